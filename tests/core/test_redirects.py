"""Redirects are never followed: a 3xx is a final, counted failure that names its Location.

Two real loopback servers: the capture host answers with a redirect to a second one, which
records whether anything at all arrived there (a bodyless GET, the events, the API key).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from posthog_integrations import APIError, Client
from posthog_integrations.core.transport import Transport
from tests.conftest import API_KEY
from tests.loopback import LoopbackServer, answer_ok, redirect_to

REDIRECTS = [301, 302, 307, 308]


@pytest.fixture
def elsewhere() -> Iterator[LoopbackServer]:
    """Where the redirects point: a server that answers 200 to anything and records it."""
    with LoopbackServer(answer_ok) as server:
        yield server


def assert_nothing_arrived(server: LoopbackServer) -> None:
    assert server.connections == 0, [request.raw for request in server.requests]


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("sync_mode", [False, True])
def test_a_redirect_is_a_final_counted_failure_that_names_the_location(
    elsewhere: LoopbackServer, status: int, sync_mode: bool, caplog: pytest.LogCaptureFixture
) -> None:
    location = f"{elsewhere.url}/batch/"
    failures: list[tuple[Exception, list[dict[str, Any]]]] = []
    with LoopbackServer(redirect_to(status, location)) as redirecting:
        client = Client(API_KEY, host=redirecting.url, sync_mode=sync_mode, retry_base_delay=0.02,
                        on_error=lambda error, batch: failures.append((error, batch)))
        try:
            uuid = client.capture("signed up", distinct_id="u")
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)

    assert len(redirecting.requests) == 1  # final: not retried
    assert_nothing_arrived(elsewhere)
    stats = client.stats()
    assert (stats.sent, stats.failed_batches, stats.dropped_by_reason["failed"]) == (0, 1, 1)
    [(error, batch)] = failures
    assert isinstance(error, APIError)
    assert error.status == status
    assert error.location == location
    assert [event["uuid"] for event in batch] == [uuid]
    [warning] = [r.getMessage() for r in caplog.records if "dropping a batch" in r.getMessage()]
    assert location in warning
    assert "redirect" in warning
    assert API_KEY not in caplog.text


@pytest.mark.parametrize("status", REDIRECTS)
def test_the_transport_follows_no_redirect_for_any_request(
    elsewhere: LoopbackServer, status: int
) -> None:
    """Not following is a property of the transport: a later endpoint (here a GET) inherits it."""
    with LoopbackServer(redirect_to(status, f"{elsewhere.url}/flags/")) as redirecting:
        transport = Transport(redirecting.url, API_KEY, timeout=2, gzip=False)
        try:
            with pytest.raises(APIError) as raised:
                transport.send("GET", "/flags/", body=None, headers=None, deadline=None)
            with pytest.raises(APIError):
                transport.post([b'{"event":"e"}'], historical_migration=False)
        finally:
            transport.close()
    assert raised.value.status == status
    assert len(redirecting.requests) == 2
    assert_nothing_arrived(elsewhere)


def test_a_location_carrying_the_key_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    failures: list[Exception] = []
    answer = redirect_to(302, f"http://127.0.0.1:9/?token={API_KEY}")
    with LoopbackServer(answer) as redirecting:
        client = Client(API_KEY, host=redirecting.url, sync_mode=True,
                        on_error=lambda error, batch: failures.append(error))
        client.capture("e", distinct_id="u")
        client.shutdown(timeout=2)
    [error] = failures
    assert API_KEY not in str(error)
    assert "<api key>" in str(error)
    assert API_KEY not in caplog.text
