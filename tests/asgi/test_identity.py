"""Identity you can trust under ASGI: the app's ``identify`` hook wins over the tracing header.

The header is a hint from the browser; a FastAPI or Starlette app that knows its user (from a
token, here) attributes the request to that user, whatever id the header claims. The hook runs
at the first event or identity read of a request, at most once, and never for a request that
captures nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import ConfigurationError
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory, delivered

TOKENS = {"token-of-ada": "ada", "token-of-bob": "bob"}
VICTIM = {"X-POSTHOG-DISTINCT-ID": "bob", "X-POSTHOG-SESSION-ID": "session-9"}


class TokenIdentity:
    """An ``identify`` hook reading a bearer token from the ASGI scope, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, scope: dict[str, Any]) -> str | None:
        self.calls += 1
        for name, value in scope["headers"]:
            if name == b"authorization" and value.startswith(b"Bearer "):
                return TOKENS.get(value[7:].decode())
        return None


def fastapi_app(identify: Any, make_client: ClientFactory) -> tuple[FastAPI, posthog.Client]:
    client = make_client()
    app = FastAPI()

    @app.get("/me")
    async def me() -> dict[str, Any]:
        seen = posthog.get_context_distinct_id()
        posthog.capture("profile viewed")
        posthog.capture("profile viewed again")
        return {"distinct_id": seen}

    @app.get("/flag")
    async def flag() -> dict[str, Any]:
        return {"variant": (await posthog.aevaluate_flags()).get_flag("new-checkout")}

    @app.get("/quiet")
    async def quiet() -> dict[str, Any]:
        return {"ok": True}

    app.add_middleware(PostHogMiddleware, client=client, identify=identify)
    return app, client


def test_a_logged_in_user_claiming_another_id_is_attributed_to_themself(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    identify = TokenIdentity()
    app, client = fastapi_app(identify, make_client)
    answer = TestClient(app).get("/me", headers={**VICTIM, "Authorization": "Bearer token-of-ada"})
    assert answer.json() == {"distinct_id": "ada"}
    events = delivered(client, sink)
    assert [e["distinct_id"] for e in events] == ["ada", "ada"]
    assert {e["properties"]["$session_id"] for e in events} == {"session-9"}
    assert identify.calls == 1  # once per request, however many reads and events


def test_an_anonymous_visitor_keeps_the_header_id(sink: LocalSink,
                                                  make_client: ClientFactory) -> None:
    app, client = fastapi_app(TokenIdentity(), make_client)
    answer = TestClient(app).get("/me", headers=VICTIM)
    assert answer.json() == {"distinct_id": "bob"}
    assert {e["distinct_id"] for e in delivered(client, sink)} == {"bob"}


def test_a_request_that_captures_nothing_never_calls_the_hook(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    identify = TokenIdentity()
    app, client = fastapi_app(identify, make_client)
    browser = TestClient(app)
    for _ in range(3):
        assert browser.get("/quiet", headers={"Authorization": "Bearer token-of-ada"}).json() == {
            "ok": True}
    assert identify.calls == 0
    assert delivered(client, sink) == []


@pytest.mark.parametrize("broken", ["raises", "returns a number"])
def test_a_broken_hook_is_logged_and_the_header_is_used(
    broken: str, sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def identify(scope: dict[str, Any]) -> Any:
        if broken == "raises":
            raise LookupError("token store down")
        return 7

    app, client = fastapi_app(identify, make_client)
    answer = TestClient(app).get("/me", headers=VICTIM)
    assert answer.status_code == 200
    assert answer.json() == {"distinct_id": "bob"}
    assert {e["distinct_id"] for e in delivered(client, sink)} == {"bob"}
    assert any("identify hook" in record.getMessage() for record in caplog.records)


def test_starlette_with_the_hook_and_an_explicit_identify_context(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    """The hook wins over the header; the app's own ``identify_context`` wins over both."""
    identify = TokenIdentity()

    async def checkout(request: Request) -> PlainTextResponse:
        posthog.capture("cart viewed")
        if request.query_params.get("as"):
            posthog.identify_context(request.query_params["as"])
        posthog.capture("checkout")
        return PlainTextResponse(str(posthog.get_context_distinct_id()))

    client = make_client()
    app = PostHogMiddleware(Starlette(routes=[Route("/checkout", checkout)]), client=client,
                            identify=identify)
    browser = TestClient(app)
    headers = {**VICTIM, "Authorization": "Bearer token-of-ada"}
    assert browser.get("/checkout", headers=headers).text == "ada"
    assert browser.get("/checkout?as=ada-admin", headers=headers).text == "ada-admin"
    events = delivered(client, sink)
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("cart viewed", "ada"), ("checkout", "ada"),
        ("cart viewed", "ada"), ("checkout", "ada-admin"),
    ]
    assert identify.calls == 2


def test_identify_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="identify: expected a callable or None"):
        PostHogMiddleware(Starlette(), identify="app.auth.user_id")  # type: ignore[arg-type]


def test_without_a_hook_the_header_still_identifies(sink: LocalSink,
                                                    make_client: ClientFactory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="posthog_integrations")
    app, client = fastapi_app(None, make_client)
    assert TestClient(app).get("/me", headers=VICTIM).json() == {"distinct_id": "bob"}
    assert {e["distinct_id"] for e in delivered(client, sink)} == {"bob"}
    assert not caplog.records


def test_a_hook_that_captures_gets_the_header_id_for_that_event(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    """An app whose token check captures (an audit event) would otherwise recurse."""

    def identify(scope: dict[str, Any]) -> str | None:
        posthog.capture("token checked")
        return "ada"

    app, client = fastapi_app(identify, make_client)
    assert TestClient(app).get("/me", headers=VICTIM).json() == {"distinct_id": "ada"}
    events = delivered(client, sink)
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("token checked", "bob"), ("profile viewed", "ada"), ("profile viewed again", "ada")]


def test_a_thread_asking_while_another_looks_up_gets_the_user_not_the_header(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    """A view handing work to a thread (with its context) while the hook is still running
    must not let that thread's events fall back to the header's id."""
    import contextvars
    import threading

    started, release = threading.Event(), threading.Event()

    def identify(scope: dict[str, Any]) -> str | None:
        if threading.current_thread() is threading.main_thread() or not started.is_set():
            started.set()
            release.wait(timeout=30)
        return "ada"

    async def view(request: Request) -> PlainTextResponse:
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(posthog.capture, "slow lookup"))
        worker.start()
        started.wait(timeout=30)
        other = threading.Thread(target=contextvars.copy_context().run,
                                 args=(posthog.capture, "meanwhile"))
        other.start()
        other.join(timeout=30)
        release.set()
        worker.join(timeout=30)
        return PlainTextResponse("done")

    client = make_client()
    app = PostHogMiddleware(Starlette(routes=[Route("/", view)]), client=client,
                            identify=identify)
    assert TestClient(app).get("/", headers=VICTIM).text == "done"
    events = delivered(client, sink)
    assert {(e["event"], e["distinct_id"]) for e in events} == {
        ("slow lookup", "ada"), ("meanwhile", "ada")}


def test_person_updates_go_to_the_identified_user(sink: LocalSink,
                                                  make_client: ClientFactory) -> None:
    async def profile(request: Request) -> PlainTextResponse:
        posthog.set(properties={"plan": "pro"})
        return PlainTextResponse("saved")

    client = make_client()
    app = PostHogMiddleware(Starlette(routes=[Route("/", profile)]), client=client,
                            identify=TokenIdentity())
    browser = TestClient(app)
    browser.get("/", headers={**VICTIM, "Authorization": "Bearer token-of-ada"})
    browser.get("/", headers=VICTIM)
    browser.get("/")  # anonymous without the header: no person to update
    events = delivered(client, sink)
    assert [(e["event"], e["distinct_id"], e["$set"]) for e in events] == [
        ("$set", "ada", {"plan": "pro"}), ("$set", "bob", {"plan": "pro"})]


def test_a_logged_in_user_claiming_another_id_gets_their_own_flags() -> None:
    # The header's id, bob, would get "test"; ada, whom the token names, "control".
    flags = {"flags": {"new-checkout": "control"},
             "distinct_ids": {"bob": {"new-checkout": "test"}}}
    with LocalSink(flags=flags) as flag_sink:
        made: list[posthog.Client] = []

        def make_client(**options: Any) -> posthog.Client:
            made.append(posthog.Client(API_KEY, host=flag_sink.url, **options))
            return made[-1]

        app, client = fastapi_app(TokenIdentity(), make_client)
        browser = TestClient(app)
        token = {**VICTIM, "Authorization": "Bearer token-of-ada"}
        assert browser.get("/flag", headers=token).json() == {"variant": "control"}
        assert browser.get("/flag", headers=VICTIM).json() == {"variant": "test"}
        client.shutdown(timeout=2)
        asked_for = [r.body["distinct_id"] for r in flag_sink.requests()
                     if r.path.rstrip("/") == "/flags"]
    assert asked_for == ["ada", "bob"]
