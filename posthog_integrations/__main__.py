"""The ``posthog-integrations`` command: ``demo``, ``sink`` and ``check``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import check_cli
from ._version import VERSION
from .sink import cli as sink_cli


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do.
        # Python flushes stdout again at exit, so it is pointed at devnull first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="posthog-integrations", description="PostHog for Django, Flask and ASGI apps."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="serve the example shops, send them a visit, show the events that arrived"
    )
    demo_parser.add_argument("--keep-open", action="store_true",
                             help="keep the local endpoint and its viewer running afterwards")
    demo_parser.add_argument("--examples", type=Path, metavar="DIR",
                             help="the example_projects folder of a clone (default: beside the "
                                  "package, else ./example_projects)")
    sink_parser = commands.add_parser(
        "sink", help="run a local PostHog-compatible capture endpoint (no account needed)"
    )
    check_parser = commands.add_parser(
        "check", help="send one test event with your app's PostHog settings and report what "
                      "happened, plus fork and threading hazards"
    )
    check_cli.add_arguments(check_parser)
    sink_cli.add_arguments(sink_parser)
    args = parser.parse_args(argv)
    if args.command == "check":  # needs no werkzeug
        return check_cli.run(args)
    if args.command == "sink":
        return sink_cli.run(args)
    if not sink_cli.werkzeug_installed("demo"):
        return 2
    from . import demo

    return demo.run(keep_open=args.keep_open, examples=args.examples)


if __name__ == "__main__":
    sys.exit(main())
