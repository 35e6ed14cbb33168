"""Flag tests run against a real loopback PostHog (see ``flags_server``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from posthog_integrations import Client
from tests.conftest import API_KEY
from tests.flags.flags_server import FlagsServer

FlagsClientFactory = Callable[..., Client]


@pytest.fixture
def flags_server() -> Iterator[FlagsServer]:
    with FlagsServer() as server:
        yield server


@pytest.fixture
def make_flags_client(flags_server: FlagsServer) -> Iterator[FlagsClientFactory]:
    """Clients pointed at ``flags_server``; all are shut down afterwards."""
    clients: list[Client] = []

    def factory(**options: Any) -> Client:
        settings: dict[str, Any] = {"api_key": API_KEY, "host": flags_server.url,
                                    "retry_base_delay": 0.02, **options}
        client = Client(**settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.shutdown(timeout=2)
