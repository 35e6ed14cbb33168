"""Shared fixtures: a real local capture endpoint on loopback and clients pointed at it."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink

API_KEY = "phc_test_secret_key_123"

try:
    import django

    _HAS_DJANGO = django.VERSION >= (4, 2)
except ImportError:
    _HAS_DJANGO = False
collect_ignore = [] if _HAS_DJANGO else ["django"]
ClientFactory = Callable[..., Client]

# A shell without job control starts background jobs with SIGINT ignored, and children inherit
# that: the tests that press Ctrl-C on a child process (the sink, the demo) need it delivered.
# A handled signal is reset to its default in an exec'd child, an ignored one stays ignored.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def sink() -> Iterator[LocalSink]:
    with LocalSink() as running:
        yield running


@pytest.fixture
def make_client(sink: LocalSink) -> Iterator[ClientFactory]:
    """Build clients that deliver to ``sink`` with fast retries; all are shut down afterwards."""
    clients: list[Client] = []

    def factory(**options: Any) -> Client:
        settings: dict[str, Any] = {
            "api_key": API_KEY, "host": sink.url, "retry_base_delay": 0.02, **options
        }
        client = Client(**settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.shutdown(timeout=2)


@pytest.fixture(autouse=True)
def _library_logs_propagate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="posthog_integrations")


def delivered(client: Client, sink: LocalSink, **filters: Any) -> list[dict[str, Any]]:
    """Flush ``client`` and return what the endpoint stored (optionally filtered)."""
    assert client.flush(timeout=5), "the client did not deliver its events in time"
    return sink.events(**filters)
