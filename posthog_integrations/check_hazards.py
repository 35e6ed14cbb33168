"""Fork and threading hazards the check commands can see from the environment: uWSGI without
threads, gunicorn ``--preload``, serverless platforms."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from .check_findings import Finding
from .core.options import ClientOptions
from .core.runtime import uwsgi_threads_enabled

SERVERLESS_VARIABLES = ("AWS_LAMBDA_FUNCTION_NAME", "FUNCTION_TARGET", "K_SERVICE", "VERCEL")


def runtime_findings(options: ClientOptions, environ: Mapping[str, str], argv: Sequence[str],
                     uwsgi_options: Mapping[str, Any] | None) -> list[Finding]:
    """One finding per hazard present; none when the environment shows none."""
    found = (
        uwsgi_finding(options.sync_mode, environ, argv, uwsgi_options),
        gunicorn_preload_finding(environ, argv),
        serverless_finding(options.sync_mode, environ),
    )
    return [finding for finding in found if finding is not None]


def uwsgi_finding(sync_mode: bool, environ: Mapping[str, str], argv: Sequence[str],
                  uwsgi_options: Mapping[str, Any] | None) -> Finding | None:
    """Under uWSGI, threads must be enabled for the background sender (or use sync_mode)."""
    if uwsgi_options is not None:
        threads = uwsgi_threads_enabled(uwsgi_options)
        evidence = "uWSGI options"
    else:
        variables = sorted(name for name in environ if name.startswith("UWSGI_"))
        if not variables and not _ran_as(argv, "uwsgi"):
            return None
        threads = uwsgi_threads_enabled({"enable-threads": environ.get("UWSGI_ENABLE_THREADS"),
                                         "threads": environ.get("UWSGI_THREADS")}) or \
            any(arg in ("--enable-threads", "-T") or arg.startswith("--threads") for arg in argv)
        evidence = ", ".join(variables[:3]) or "the command line"
    if sync_mode:
        return Finding("ok", "uWSGI", "sync_mode sends in the request's thread; uWSGI threads "
                       "are not needed")
    if threads:
        return Finding("ok", "uWSGI", "threads are enabled, so the background sender can run")
    return Finding("warn", "uWSGI", f"running under uWSGI ({evidence}) and enable-threads was "
                   "not found: without it uWSGI runs no background threads and events are "
                   "never sent; set enable-threads = true in its config, or sync_mode=True")


def gunicorn_preload_finding(environ: Mapping[str, str], argv: Sequence[str]) -> Finding | None:
    """gunicorn ``--preload`` creates the client before forking: safe, and worth saying why."""
    if "--preload" not in [*_split(environ.get("GUNICORN_CMD_ARGS", "")), *argv]:
        return None
    return Finding("ok", "gunicorn --preload", "the app and its client are created before the "
                   "workers fork; the client is fork-safe: each worker starts its own sender, "
                   "with an empty queue, on its first event")


def serverless_finding(sync_mode: bool, environ: Mapping[str, str]) -> Finding | None:
    """Serverless platforms freeze the process between invocations: send before returning."""
    platform = next((name for name in SERVERLESS_VARIABLES if environ.get(name)), None)
    if platform is None:
        return None
    if sync_mode:
        return Finding("ok", "serverless", f"{platform} is set and sync_mode is on: each "
                       "event is sent before capture returns")
    return Finding("warn", "serverless", f"{platform} is set and sync_mode is off: the platform "
                   "may freeze or end the process between invocations, before the background "
                   "sender has sent; set sync_mode=True or call flush() at the end of each "
                   "invocation")


def _ran_as(argv: Sequence[str], program: str) -> bool:
    return bool(argv) and os.path.basename(argv[0]).startswith(program)


def _split(command_line: str) -> list[str]:
    try:
        return shlex.split(command_line)
    except ValueError:  # unbalanced quotes: gunicorn would fail too; look at the words anyway
        return command_line.split()
