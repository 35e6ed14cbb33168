"""A local PostHog-compatible capture endpoint, for tests and the demo.

``with LocalSink() as sink:`` runs it in-process; ``posthog-integrations sink``
runs it from the command line (see :func:`serve`). It also answers ``POST /flags`` from a
flags file (see :mod:`posthog_integrations.sink.flags` for the format).

The names below are imported on first use, so the command line can describe the ``sink``
command (see :mod:`posthog_integrations.sink.cli`) when werkzeug is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import RecordedRequest, ScriptedResponse
    from .server import LocalSink, serve
    from .store import EventStore, StoredEvent

__all__ = [
    "EventStore",
    "LocalSink",
    "RecordedRequest",
    "ScriptedResponse",
    "StoredEvent",
    "serve",
]

_MODULE_OF = {
    "EventStore": "store",
    "LocalSink": "server",
    "RecordedRequest": "app",
    "ScriptedResponse": "app",
    "StoredEvent": "store",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
