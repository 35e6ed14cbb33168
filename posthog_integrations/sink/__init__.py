"""A local PostHog-compatible capture endpoint, for tests and the demo.

``with LocalSink() as sink:`` runs it in-process; ``posthog-integrations sink``
runs it from the command line (see :func:`serve`). It also answers ``POST /flags`` from a
flags file (see :mod:`posthog_integrations.sink.flags` for the format).
"""

from __future__ import annotations

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
