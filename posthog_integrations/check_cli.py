"""``posthog-integrations check``: read the app's PostHog settings, send one test event, and
report what happened and what the environment puts at risk, one line each.

Exit status: 0 when the test event was delivered; 1 when sending was tried and failed; 2 when
nothing could be tried: bad arguments, settings that do not load or are invalid, no API key,
PostHog disabled, or ``send`` False.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .check import CheckResult, run_check, status_meaning
from .core.client import Client
from .core.options import ClientOptions, ConfigurationError, positive_seconds
from .core.runtime import uwsgi_options, uwsgi_threads_enabled

DELIVERED, NOT_DELIVERED, UNUSABLE = 0, 1, 2
SERVERLESS_VARIABLES = ("AWS_LAMBDA_FUNCTION_NAME", "FUNCTION_TARGET", "K_SERVICE", "VERCEL")
# Keys shorter than this show no tail when masked, and are not searched for in the output.
_MASKABLE_LENGTH = 20
_MIN_REDACTED_LENGTH = 6

EXIT_STATUS_HELP = (
    "exit status: 0 the test event was delivered; 1 sending it failed; 2 nothing could be sent "
    "(bad arguments, settings that do not load or are invalid, no API key, PostHog disabled, "
    "send=False)"
)


class SettingsError(Exception):
    """The app's settings could not be loaded."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report: ``level`` is ``ok``, ``warn`` or ``FAIL``."""

    level: str
    topic: str
    text: str

    def render(self) -> str:
        return f"{self.level:<5}{self.topic}: {self.text}"


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """The client options an app would use, where they came from, and notes from loading."""

    source: str
    client_options: dict[str, Any]
    notes: tuple[Finding, ...] = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` command's options to ``parser``."""
    parser.epilog = EXIT_STATUS_HELP
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--django-settings", metavar="MODULE",
                        help="use settings.POSTHOG of this Django settings module "
                             "(e.g. mysite.settings); default: the POSTHOG_* environment")
    source.add_argument("--flask-app", metavar="IMPORT",
                        help="use the PostHog settings of this Flask app, written as for "
                             "flask --app (e.g. 'shop:create_app()' or 'shop.wsgi:app')")
    parser.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="the test request is cut off after this many seconds, from "
                             "connecting to the end of the answer (default 10)")


def run(args: argparse.Namespace) -> int:
    """Run the ``check`` command from parsed ``args``; returns the exit status."""
    printer = _Printer(os.environ.get("POSTHOG_API_KEY", ""))
    try:
        settings = load_settings(args.django_settings, args.flask_app)
        options = ClientOptions.resolve(settings.client_options)
    except (SettingsError, ConfigurationError) as error:
        printer.error(f"posthog-integrations check: {error}")
        return UNUSABLE
    printer.secret = options.api_key or printer.secret
    printer.say(f"PostHog check with the settings of {settings.source}")
    printer.show([*settings.notes, *settings_findings(options)])
    hazards = runtime_findings(options, os.environ, sys.argv, uwsgi_options())
    if not can_send(options):
        printer.show(hazards)
        printer.say("PostHog check failed: nothing was sent (see FAIL above)")
        return UNUSABLE
    result = run_check(settings.client_options, timeout=args.timeout)
    printer.show([*delivery_findings(result), *hazards])
    printer.say(f"PostHog check {'passed' if result.ok else 'failed'}: {result.message}")
    return DELIVERED if result.ok else NOT_DELIVERED


# -- reading the app's settings --------------------------------------------------------------


def load_settings(django_settings: str | None, flask_app: str | None) -> AppSettings:
    """The client options from Django settings, a Flask app, or (default) the environment."""
    if django_settings:
        return _django_settings(django_settings)
    if flask_app:
        return _flask_settings(flask_app)
    return AppSettings("the environment", {})


def _django_settings(module: str) -> AppSettings:
    if os.getcwd() not in sys.path:  # as ``manage.py`` would, import the project from here
        sys.path.insert(0, os.getcwd())
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    try:
        import django

        django.setup()
        from .django import conf

        client_options = conf.load().client_options
    except Exception as error:  # the settings module is the app's code: anything can fail
        raise SettingsError(f"cannot load the Django settings {module!r}: "
                            f"{type(error).__name__}: {error}") from None
    return AppSettings(f"the Django settings {module}", client_options)


def _flask_settings(import_path: str) -> AppSettings:
    try:
        from flask.cli import ScriptInfo

        app = ScriptInfo(app_import_path=import_path, set_debug_flag=False).load_app()
    except Exception as error:  # the app factory is the app's code: anything can fail
        raise SettingsError(f"cannot load the Flask app {import_path!r}: "
                            f"{type(error).__name__}: {error}") from None
    return flask_app_settings(app, f"the Flask app {import_path}")


def flask_app_settings(app: Any, source: str) -> AppSettings:
    """The options of the client the PostHog extension made for ``app``; without the
    extension, the ``POSTHOG_*`` entries of ``app.config`` and a warning."""
    from .flask.extension import EXTENSION_KEY, _read_config

    client = getattr(app.extensions.get(EXTENSION_KEY), "client", None)
    if isinstance(client, Client):
        return AppSettings(source, _as_keywords(client.options))
    client_options, _, _ = _read_config(app)
    note = Finding("warn", "Flask extension", "PostHog is not set up on this app (no "
                   "PostHog(app) or init_app(app)); checking its POSTHOG_* config anyway")
    return AppSettings(source, client_options, (note,))


def _as_keywords(options: ClientOptions) -> dict[str, Any]:
    return {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}


# -- what the settings say ----------------------------------------------------------------


def can_send(options: ClientOptions) -> bool:
    """Whether a client with ``options`` would send anything at all."""
    return bool(options.api_key) and not options.disabled and options.send


def settings_findings(options: ClientOptions) -> list[Finding]:
    """The API key (masked), the host, and any setting that stops sending."""
    findings = [api_key_finding(options.api_key), Finding("ok", "host", options.host)]
    if options.disabled:
        findings.append(Finding("FAIL", "disabled", "PostHog is disabled (the disabled setting "
                                "or POSTHOG_DISABLED), so nothing is sent"))
    if not options.send:
        findings.append(Finding("FAIL", "send", "send is False: events are accepted, then "
                                "dropped, never sent"))
    return findings


def api_key_finding(api_key: str) -> Finding:
    """Whether there is a key and what kind it looks like; never the key itself."""
    if not api_key:
        return Finding("FAIL", "API key", "missing: set POSTHOG_API_KEY or the API key setting")
    masked = mask_key(api_key)
    if api_key.startswith("phx_"):
        return Finding("warn", "API key", f"present ({masked}), but phx_ is a personal API key: "
                       "sending events needs the project API key (phc_...)")
    if api_key.startswith("phc_"):
        return Finding("ok", "API key", f"present (project key {masked})")
    return Finding("ok", "API key", f"present ({masked}; not in the phc_ form of project keys)")


def mask_key(api_key: str) -> str:
    """``phc_...abcd``: the key's prefix and, if the key is long, its last four characters."""
    prefix = api_key[:4] if api_key[3:4] == "_" else ""
    tail = api_key[-4:] if len(api_key) >= _MASKABLE_LENGTH else ""
    return f"{prefix}...{tail}"


# -- what the test event showed -----------------------------------------------------------


def delivery_findings(result: CheckResult) -> list[Finding]:
    """Reachable or not, the HTTP status and its meaning, the latency."""
    if result.latency_ms is None:  # the client refused to send
        return [Finding("FAIL", "test event", result.message)]
    if result.status is None:
        return [Finding("FAIL", "reachable", result.message)]
    return [
        Finding("ok", "reachable", f"{result.host} answered"),
        Finding("ok" if result.ok else "FAIL", "HTTP status",
                f"{result.status} ({status_meaning(result.status)})"),
        Finding("ok", "latency", f"{result.latency_ms:.0f} ms"),
    ]


# -- what the environment puts at risk ----------------------------------------------------


def runtime_findings(options: ClientOptions, environ: Mapping[str, str], argv: Sequence[str],
                     uwsgi_options: Mapping[str, Any] | None) -> list[Finding]:
    """Fork and threading hazards visible from the environment: uWSGI threads, gunicorn
    ``--preload``, serverless platforms."""
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


def _seconds(text: str) -> float:
    try:
        return positive_seconds("--timeout", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, got {text!r}") from None


class _Printer:
    """Writes the report, with the API key (once known) masked wherever it would appear."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def say(self, text: str, stream: TextIO | None = None) -> None:
        print(self._redacted(text), file=stream or sys.stdout, flush=True)

    def error(self, text: str) -> None:
        self.say(text, sys.stderr)

    def show(self, findings: Sequence[Finding]) -> None:
        for finding in findings:
            self.say(finding.render())

    def _redacted(self, text: str) -> str:
        if len(self.secret) < _MIN_REDACTED_LENGTH:
            return text
        return text.replace(self.secret, mask_key(self.secret))
