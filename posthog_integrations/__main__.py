"""The ``posthog-integrations`` command: ``demo`` and ``sink``."""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posthog-integrations", description="PostHog for Django, Flask and ASGI apps."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="capture events end to end against a local capture endpoint and show them"
    )
    sink_parser = commands.add_parser(
        "sink", help="run a local PostHog-compatible capture endpoint (no account needed)"
    )
    sink_server = _optional_sink()
    if sink_server is not None:
        sink_server.add_arguments(sink_parser)
    args = parser.parse_args(argv)
    if sink_server is None:
        print("the local capture endpoint needs werkzeug: "
              "pip install 'posthog-integrations[sink]'", file=sys.stderr)
        return 2
    if args.command == "sink":
        status: int = sink_server.run(args)
        return status
    from . import demo

    return demo.run()


def _optional_sink() -> types.ModuleType | None:
    try:
        from .sink import server
    except ImportError:  # werkzeug is an optional dependency
        return None
    return server


if __name__ == "__main__":
    sys.exit(main())
