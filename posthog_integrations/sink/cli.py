"""The ``posthog-integrations sink`` command: its options, and running it.

Importing this module needs no werkzeug, so ``sink --help`` shows every option without it;
running the sink without werkzeug says which extra to install.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from .location import DATABASE_NAME, data_directory, default_database

__all__ = ["SINK_EXTRA", "add_arguments", "respond_status", "run", "werkzeug_installed"]

SINK_EXTRA = "install the [sink] extra (from a clone: pip install './posthog-integrations[sink]')"
MEMORY = ":memory:"


def respond_status(text: str) -> int:
    """An HTTP error status, 400 to 599, for ``--respond``."""
    try:
        status = int(text)
    except ValueError:
        status = 0
    if not 400 <= status <= 599:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status from 400 to 599")
    return status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sink`` command's options to ``parser``."""
    parser.epilog = f"The sink needs werkzeug: {SINK_EXTRA}"
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8010, help="port (0 picks a free one)")
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"SQLite file for the received events (default: {DATABASE_NAME} in the user data"
             f" directory{_where_data_goes()}, or in the temp directory when that is not"
             f" writable; {MEMORY!r} keeps them in memory)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print received events")
    parser.add_argument(
        "--flags",
        metavar="FILE",
        help="JSON file of feature flag values to answer /flags with (re-read when it changes)",
    )
    parser.add_argument(
        "--definitions",
        metavar="FILE",
        help="JSON file of flag definitions to answer /flags/definitions with, for local"
             " evaluation, and to evaluate /flags from, as PostHog would (re-read when it"
             " changes; not with --flags)",
    )
    parser.add_argument(
        "--respond",
        type=respond_status,
        metavar="STATUS",
        help="answer every capture request with this HTTP status, 400 to 599, and store"
             " nothing: 401 as for a wrong API key, 503 to watch clients retry",
    )


def _where_data_goes() -> str:
    try:
        return f", {data_directory()}"
    except RuntimeError:  # no home directory to be found
        return ""


def werkzeug_installed(command: str) -> bool:
    """Whether werkzeug can be imported; if not, say which extra to install, on one line."""
    try:
        import werkzeug  # noqa: F401
    except ImportError:
        print(f"posthog-integrations {command} needs werkzeug: {SINK_EXTRA}", file=sys.stderr)
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run the ``sink`` command from parsed ``args``; returns the exit status."""
    if not werkzeug_installed("sink"):
        return 2
    from .server import serve

    try:
        db_path = _database(args.db)
    except OSError as exc:  # neither the data directory nor a temp one could be made
        print(f"posthog-integrations sink: no directory for the events: {exc}", file=sys.stderr)
        return 1
    try:
        serve(args.host, args.port, db_path, echo=not args.quiet, flags=args.flags,
              respond=args.respond, definitions=args.definitions)
    except ValueError as exc:  # an invalid flags or definitions file
        print(f"posthog-integrations sink: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"posthog-integrations sink: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"posthog-integrations sink: {db_path}: {exc}", file=sys.stderr)
        return 1
    return 0


def _database(given: str | None) -> str | None:
    """The database file to open, or None to keep the events in memory."""
    if given == MEMORY:
        return None
    return given if given is not None else str(default_database())
