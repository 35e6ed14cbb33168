"""Failures (spec §4): only 502, 504 and transient transport errors are retried, once by
default; every other answer is final; redirects are never followed; time is bounded."""

from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import API_KEY
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import Answer, FlagsServer
from tests.loopback import LoopbackServer, answer_ok, redirect_to

ON = {"featureFlags": {"f": "second"}}


@pytest.mark.parametrize("status", [502, 504])
def test_a_502_or_504_is_retried_once_and_the_second_answer_wins(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, status: int
) -> None:
    flags_server.script(status, ON)
    client = make_flags_client()
    started = time.monotonic()
    assert client.get_feature_flag("f", "u") == "second"
    assert len(flags_server.flags_requests) == 2
    assert time.monotonic() - started >= 0.3  # the spec's backoff before the retry
    assert flags_server.flags_requests[0].raw_body == flags_server.flags_requests[1].raw_body


@pytest.mark.parametrize("status", [500, 503, 429, 408, 400, 401])
def test_other_statuses_are_final(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, status: int
) -> None:
    flags_server.script(status, ON)
    client = make_flags_client(flag_defaults={"f": "default"})
    snapshot = client.evaluate_flags("u")
    assert snapshot.failure == f"api_error_{status}"
    assert snapshot.get_flag("f") == "default"
    assert len(flags_server.flags_requests) == 1


def test_retries_stop_at_the_budget(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(502, 502, 502, ON)
    snapshot = make_flags_client().evaluate_flags("u")
    assert snapshot.failure == "api_error_502"
    assert len(flags_server.flags_requests) == 2


def test_no_retry_when_the_budget_is_zero(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(502, ON)
    snapshot = make_flags_client(feature_flags_request_max_retries=0).evaluate_flags("u")
    assert snapshot.failure == "api_error_502"
    assert len(flags_server.flags_requests) == 1


def test_a_dropped_connection_is_retried() -> None:
    """The first connection is closed with no answer; the second gets one."""
    from posthog_integrations import Client
    from tests.loopback import head

    def answer(server: LoopbackServer, connection: socket.socket, request: object) -> None:
        if len([r for r in server.requests if r.path.startswith("/flags")]) == 1:
            connection.shutdown(socket.SHUT_RDWR)
            return
        body = b'{"featureFlags": {"f": true}}'
        connection.sendall(head(200, "Content-Type: application/json", length=len(body)) + body)

    with LoopbackServer(answer) as server:
        client = Client(API_KEY, host=server.url)
        try:
            assert client.get_feature_flag("f", "u") is True
        finally:
            client.shutdown(timeout=2)
    assert len([r for r in server.requests if r.path.startswith("/flags")]) == 2


def test_a_refused_connection_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    from posthog_integrations import Client
    from posthog_integrations.core.transport import Transport
    from posthog_integrations.feature_flags.remote import FlagsFailure, fetch_flags

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    waits: list[float] = []
    transport = Transport(host, API_KEY, timeout=2, gzip=False)
    try:
        outcome = fetch_flags(transport, b"{}", max_retries=3, sleep=waits.append)
    finally:
        transport.close()
    assert outcome == FlagsFailure("connection_error", outcome.detail)  # type: ignore[union-attr]
    assert waits == []  # no backoff: the refused connection was final

    client = Client(API_KEY, host=host, flag_defaults={"f": False})
    try:
        snapshot = client.evaluate_flags("u")
    finally:
        client.shutdown(timeout=2)
    assert snapshot.failure == "connection_error"
    assert snapshot.get_flag("f") is False
    assert API_KEY not in caplog.text


def test_a_slow_endpoint_is_cut_at_flags_timeout_and_retried_once(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(Answer(delay=30), Answer(delay=30))
    client = make_flags_client(flags_timeout=0.5, flag_defaults={"f": "default"})
    started = time.monotonic()
    snapshot = client.evaluate_flags("u")
    elapsed = time.monotonic() - started
    assert snapshot.failure == "timeout"
    assert snapshot.get_flag("f") == "default"
    assert len(flags_server.flags_requests) == 2  # a timeout is transient: one retry
    assert 1.0 <= elapsed < 10  # two attempts of 0.5 s and the 0.3 s backoff, never 30 s


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed(status: int) -> None:
    from posthog_integrations import Client

    with LoopbackServer(answer_ok) as elsewhere, \
            LoopbackServer(redirect_to(status, f"{elsewhere.url}/flags/?v=2")) as redirecting:
        client = Client(API_KEY, host=redirecting.url, flag_defaults={"f": True})
        try:
            snapshot = client.evaluate_flags("u")
        finally:
            client.shutdown(timeout=2)
        assert elsewhere.connections == 0
    assert snapshot.failure == f"api_error_{status}"
    assert snapshot.get_flag("f") is True
    assert len(redirecting.requests) == 1


def test_the_api_key_never_reaches_the_logs(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server echoes the request (which holds the key) in its error answer."""
    flags_server.script(Answer(500, {"error": f"bad request with token {API_KEY}"}))
    client = make_flags_client()
    snapshot = client.evaluate_flags("u")
    assert snapshot.failure == "api_error_500"
    assert "api_error_500" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(snapshot)
    assert API_KEY not in repr(client)
