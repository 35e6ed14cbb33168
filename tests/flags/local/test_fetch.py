"""One definitions request (``fetch_definitions``) and the direct source, against real loopback
servers: the local sink, and misbehaving servers for redirects and floods."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from posthog_integrations.core.options import ClientOptions
from posthog_integrations.core.transport import Transport
from posthog_integrations.feature_flags.local import fetch
from posthog_integrations.feature_flags.local.fetch import fetch_definitions
from posthog_integrations.feature_flags.local.source import DirectSource, Fetched, source_for
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY
from tests.loopback import LoopbackServer, answer_ok, head, redirect_to

SECRET = "phx_fetch_secret_0123456789abcdefgh"
DEFINITIONS: dict[str, Any] = {
    "flags": [{"id": 1, "key": "beta", "active": True,
               "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}],
    "group_type_mapping": {},
    "cohorts": {},
}


@pytest.fixture
def definitions_sink() -> Iterator[LocalSink]:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


@pytest.fixture
def transport_to(request: pytest.FixtureRequest) -> Iterator[Any]:
    transports: list[Transport] = []

    def make(url: str, timeout: float = 5.0) -> Transport:
        transport = Transport(url, API_KEY, timeout=timeout, gzip=False)
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        transport.close()


def fetched_from(transport: Transport, etag: str | None = None) -> Fetched:
    return fetch_definitions(transport, project_key=API_KEY, secret_key=SECRET, etag=etag)


def assert_no_secret(fetched: Fetched) -> None:
    assert SECRET not in repr(fetched)
    assert API_KEY not in repr(fetched)


def test_the_request_is_a_get_with_the_token_cohorts_and_the_bearer_secret(
    definitions_sink: LocalSink, transport_to: Any
) -> None:
    fetched = fetched_from(transport_to(definitions_sink.url))
    assert fetched.outcome == "updated"
    assert fetched.data == DEFINITIONS
    assert fetched.etag is not None
    [request] = definitions_sink.requests()
    assert request.path == "/flags/definitions"
    assert request.query == f"token={API_KEY}&send_cohorts"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert "if-none-match" not in request.headers
    assert request.headers["user-agent"].startswith("posthog-integrations/")


def test_a_known_etag_is_sent_and_304_keeps_it(definitions_sink: LocalSink,
                                               transport_to: Any) -> None:
    transport = transport_to(definitions_sink.url)
    etag = fetched_from(transport).etag
    fetched = fetched_from(transport, etag)
    assert fetched == Fetched("not_modified", None, etag, "")
    assert definitions_sink.requests()[1].headers["if-none-match"] == etag


def test_a_304_without_an_etag_keeps_the_one_sent(transport_to: Any) -> None:
    def not_modified(server: LoopbackServer, connection: socket.socket, _: Any) -> None:
        connection.sendall(head(304))

    with LoopbackServer(not_modified) as server:
        fetched = fetched_from(transport_to(server.url), '"sent"')
    assert (fetched.outcome, fetched.etag) == ("not_modified", '"sent"')


@pytest.mark.parametrize(("status", "outcome"), [(401, "unauthorized"), (402, "quota_limited")])
def test_401_and_402_have_their_own_outcomes(definitions_sink: LocalSink, transport_to: Any,
                                             status: int, outcome: str) -> None:
    definitions_sink.script_definitions(status)
    fetched = fetched_from(transport_to(definitions_sink.url), '"old"')
    assert fetched.outcome == outcome
    assert fetched.data is None
    assert str(status) in fetched.detail


def test_an_error_answer_fails_with_its_status_and_never_the_keys(
    definitions_sink: LocalSink, transport_to: Any
) -> None:
    body = f"down; key {API_KEY}, secret {SECRET}".encode()
    definitions_sink.script_definitions(ScriptedResponse(500, body=body))
    fetched = fetched_from(transport_to(definitions_sink.url))
    assert fetched.outcome == "failed"
    assert fetched.detail.startswith("HTTP 500: down; key <api key>, secret <secret key>")
    assert_no_secret(fetched)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "unreadable answer: not JSON"),
    (b"[]", "unreadable answer: the definitions are a list"),
    (b'{"flags": 3}', "unreadable answer: the definitions' flags are not a list"),
    (json.dumps({**DEFINITIONS, "quotaLimited": ["feature_flags"]}).encode(), "quota limited"),
])
def test_a_200_that_is_no_definitions_fails(definitions_sink: LocalSink, transport_to: Any,
                                            body: bytes, fragment: str) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, body=body))
    fetched = fetched_from(transport_to(definitions_sink.url))
    assert (fetched.outcome, fetched.data) == ("failed", None)
    assert fetched.detail.startswith(fragment)


def test_quota_limited_on_other_products_only_is_no_failure(definitions_sink: LocalSink,
                                                            transport_to: Any) -> None:
    body = json.dumps({**DEFINITIONS, "quotaLimited": ["recordings"]}).encode()
    definitions_sink.script_definitions(ScriptedResponse(200, body=body))
    assert fetched_from(transport_to(definitions_sink.url)).outcome == "updated"


def test_no_answer_in_time_fails(definitions_sink: LocalSink, transport_to: Any) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, delay=3))
    fetched = fetched_from(transport_to(definitions_sink.url, timeout=0.3))
    assert fetched.outcome == "failed"
    assert fetched.detail.startswith("timeout: ")


def test_a_refused_connection_fails_without_the_key_the_url_carries(transport_to: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fetched = fetched_from(transport_to(f"http://127.0.0.1:{port}"))
    assert fetched.outcome == "failed"
    assert fetched.detail.startswith("connection error: ")
    assert "<api key>" in fetched.detail  # requests names the URL, token and all
    assert_no_secret(fetched)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_fails_and_the_secret_never_reaches_the_location(
    transport_to: Any, status: int
) -> None:
    with LoopbackServer(answer_ok) as elsewhere:
        location = f"{elsewhere.url}/flags/definitions?token={API_KEY}&send_cohorts"
        with LoopbackServer(redirect_to(status, location)) as redirecting:
            fetched = fetched_from(transport_to(redirecting.url))
        assert elsewhere.connections == 0
    assert fetched.outcome == "failed"
    assert fetched.detail.startswith("redirect: ")
    assert "not followed" in fetched.detail
    assert_no_secret(fetched)
    [request] = redirecting.requests
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_an_answer_over_the_bound_fails(transport_to: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "MAX_DEFINITIONS_BYTES", 1000)
    big = json.dumps({**DEFINITIONS, "padding": "x" * 5000}).encode()

    def flood(server: LoopbackServer, connection: socket.socket, _: Any) -> None:
        connection.sendall(head(200, "Content-Type: application/json", length=len(big)) + big)

    with LoopbackServer(flood) as server:
        fetched = fetched_from(transport_to(server.url))
    assert fetched.outcome == "failed"
    assert fetched.detail.startswith("too large: ")


def test_the_direct_source_keeps_its_etag_and_drops_it_on_401(definitions_sink: LocalSink) -> None:
    options = ClientOptions.resolve({"api_key": API_KEY, "host": definitions_sink.url,
                                     "secret_key": SECRET}, environ={})
    source = source_for(options)
    assert isinstance(source, DirectSource)
    try:
        assert source.refresh().outcome == "updated"
        assert source.refresh().outcome == "not_modified"
        definitions_sink.script_definitions(500)
        assert source.refresh().outcome == "failed"  # keeps the ETag
        assert source.refresh().outcome == "not_modified"
        definitions_sink.script_definitions(401)
        assert source.refresh().outcome == "unauthorized"  # drops it
        assert source.refresh().outcome == "updated"
    finally:
        source.close()
    sent = [request.headers.get("if-none-match") for request in definitions_sink.requests()]
    etag = sent[1]
    assert etag is not None
    assert sent == [None, etag, etag, etag, etag, None]
    assert SECRET not in repr(source)
