"""The ASGI middleware in real Starlette and FastAPI apps, driven by their test clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory, delivered

IDENTITY = {"X-POSTHOG-DISTINCT-ID": "user-1", "X-POSTHOG-SESSION-ID": "session-1"}


class Boom(Exception):
    pass


async def capture(request: Request) -> JSONResponse:
    posthog.tag("handler", request.url.path)
    posthog.capture("item viewed", properties={"item": request.path_params.get("item_id")})
    return JSONResponse({"ok": True})


async def html(request: Request) -> HTMLResponse:
    return HTMLResponse("<h1>hello</h1>")


async def fail(request: Request) -> None:
    try:
        raise KeyError("missing row")
    except KeyError as cause:
        raise Boom("view failed") from cause


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        await asyncio.sleep(0)
        posthog.capture("mid stream")
        yield b"second\n"
        if request.query_params.get("fail"):
            raise Boom("stream broke")

    return StreamingResponse(chunks(), media_type="text/plain")


async def upload(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(str(len(body)))


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    name = await websocket.receive_text()
    posthog.capture("socket message", properties={"name": name})
    await websocket.send_text(f"hi {name}")
    await websocket.close()


def starlette_app(client: Client, **options: Any) -> Starlette:
    routes = [
        Route("/items/{item_id}", capture),
        Route("/page", html),
        Route("/fail", fail),
        Route("/stream", stream),
        Route("/upload", upload, methods=["POST"]),
        WebSocketRoute("/ws", echo),
        Mount("/api", routes=[Route("/items/{item_id}", capture), Route("/fail", fail)]),
    ]
    middleware = [Middleware(PostHogMiddleware, client=client, **options)]
    return Starlette(routes=routes, middleware=middleware)


@pytest.fixture
def client(make_client: ClientFactory) -> Client:
    return make_client()


@pytest.fixture
def test_client(client: Client) -> Iterator[TestClient]:
    with TestClient(starlette_app(client, capture_pageviews=True)) as running:
        yield running


def test_captures_in_a_view_carry_the_request(test_client: TestClient, client: Client,
                                              sink: LocalSink) -> None:
    response = test_client.get("/items/42", headers=IDENTITY)
    assert response.json() == {"ok": True}
    [event] = delivered(client, sink, event="item viewed")
    assert event["distinct_id"] == "user-1"
    props = event["properties"]
    assert props["$session_id"] == "session-1"
    assert props["$current_url"] == "http://testserver/items/42"
    assert (props["$request_method"], props["$request_path"]) == ("GET", "/items/42")
    assert (props["handler"], props["item"]) == ("/items/42", "42")
    assert props["$route"] == "/items/{item_id}"


def test_captures_under_a_mount_carry_the_full_route(test_client: TestClient, client: Client,
                                                    sink: LocalSink) -> None:
    test_client.get("/api/items/7")
    [event] = delivered(client, sink, event="item viewed")
    assert event["properties"]["$route"] == "/api/items/{item_id}"
    assert event["properties"]["$request_path"] == "/api/items/7"


def test_an_exception_reaches_the_server_unchanged_and_is_captured_once(
    test_client: TestClient, client: Client, sink: LocalSink
) -> None:
    with pytest.raises(Boom) as raised:
        test_client.get("/fail", headers=IDENTITY)
    assert isinstance(raised.value.__cause__, KeyError)
    [event] = delivered(client, sink, event="$exception")
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert [e["type"] for e in props["$exception_list"]] == ["Boom", "KeyError"]
    assert props["$exception_list"][0]["mechanism"]["handled"] is False
    assert props["$exception_source"] == "asgi.middleware"
    assert (props["$request_path"], props["$route"]) == ("/fail", "/fail")


def test_the_500_response_is_unchanged(client: Client, sink: LocalSink) -> None:
    app = starlette_app(client)
    bare = Starlette(routes=[Route("/fail", fail)])
    ours = TestClient(app, raise_server_exceptions=False).get("/fail")
    theirs = TestClient(bare, raise_server_exceptions=False).get("/fail")
    assert (ours.status_code, ours.text) == (theirs.status_code, theirs.text) == (
        500, "Internal Server Error")
    assert len(delivered(client, sink, event="$exception")) == 1


def test_route_templates_under_a_mount(test_client: TestClient, client: Client,
                                       sink: LocalSink) -> None:
    with pytest.raises(Boom):
        test_client.get("/api/fail")
    test_client.get("/page")
    [error] = delivered(client, sink, event="$exception")
    assert error["properties"]["$route"] == "/api/fail"
    [pageview] = sink.events(event="$pageview")
    assert pageview["properties"]["$route"] == "/page"


def test_a_framework_404_is_not_an_exception(test_client: TestClient, client: Client,
                                             sink: LocalSink) -> None:
    assert test_client.get("/nowhere").status_code == 404
    assert delivered(client, sink, event="$exception") == []
    assert sink.events(event="$pageview") == []


def test_a_streamed_response_keeps_the_context(test_client: TestClient, client: Client,
                                               sink: LocalSink) -> None:
    assert test_client.get("/stream", headers=IDENTITY).text == "first\nsecond\n"
    [event] = delivered(client, sink, event="mid stream")
    assert event["distinct_id"] == "user-1"
    assert event["properties"]["$request_path"] == "/stream"


def test_an_error_mid_stream_is_captured_with_the_status_sent(
    test_client: TestClient, client: Client, sink: LocalSink
) -> None:
    # Starlette before 0.41 wraps it in an ExceptionGroup (its task group): either reaches us.
    with pytest.raises(Exception) as raised:
        test_client.get("/stream?fail=1", headers=IDENTITY)
    assert isinstance(raised.value, Boom) or any(
        isinstance(member, Boom) for member in getattr(raised.value, "exceptions", ()))
    [mid] = delivered(client, sink, event="mid stream")
    [error] = sink.events(event="$exception")
    assert mid["distinct_id"] == error["distinct_id"] == "user-1"
    assert error["properties"]["$response_status_code"] == 200


def test_the_body_stream_is_left_for_the_app(test_client: TestClient) -> None:
    response = test_client.post("/upload", files={"file": ("a.bin", b"x" * 100_000)})
    assert response.status_code == 200
    assert int(response.text) > 100_000


def test_two_websockets_at_once_have_one_context_each(test_client: TestClient, client: Client,
                                                      sink: LocalSink) -> None:
    with test_client.websocket_connect("/ws", headers={"X-POSTHOG-DISTINCT-ID": "a"}) as first, \
            test_client.websocket_connect("/ws", headers={"X-POSTHOG-DISTINCT-ID": "b"}) as second:
        second.send_text("bob")
        first.send_text("alice")
        assert first.receive_text() == "hi alice"
        assert second.receive_text() == "hi bob"
    events = delivered(client, sink, event="socket message")
    assert {(e["distinct_id"], e["properties"]["name"]) for e in events} == {
        ("a", "alice"), ("b", "bob")}
    assert all(e["properties"]["$current_url"] == "ws://testserver/ws" for e in events)
    assert all("$request_method" not in e["properties"] for e in events)


def test_lifespan_runs_and_shutdown_flushes(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client(flush_interval=60, flush_at=1000)
    ran: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ran.append("startup")
        yield
        ran.append("shutdown")

    app = Starlette(routes=[Route("/items/{item_id}", capture)], lifespan=lifespan,
                    middleware=[Middleware(PostHogMiddleware, client=client)])
    with TestClient(app) as test_client:
        test_client.get("/items/1")
        assert sink.events() == []  # nothing forces a send yet
    assert ran == ["startup", "shutdown"]
    assert [e["event"] for e in sink.events()] == ["item viewed"]  # flushed at shutdown


def test_applied_twice_the_inner_instance_passes_through(make_client: ClientFactory,
                                                         sink: LocalSink) -> None:
    outer_client, inner_client = make_client(), make_client(api_key="phc_inner")
    outer = PostHogMiddleware(starlette_app(inner_client), client=outer_client)
    test_client = TestClient(outer)
    test_client.get("/items/1")
    with pytest.raises(Boom):
        test_client.get("/fail")
    assert inner_client.flush(5)
    events = delivered(outer_client, sink)
    assert [e["event"] for e in events] == ["item viewed", "$exception"]
    assert {r.api_key for r in sink.requests()} == {outer_client.options.api_key}


def test_fastapi_route_templates_and_http_exceptions(client: Client, sink: LocalSink) -> None:
    app = FastAPI()
    app.add_middleware(PostHogMiddleware, client=client, capture_pageviews=True)

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        posthog.capture("user viewed")
        if user_id == 0:
            raise HTTPException(status_code=404)
        return {"user_id": user_id}

    @app.get("/crash/{code}")
    async def crash(code: str) -> None:
        raise Boom(code)

    test_client = TestClient(app, raise_server_exceptions=False)
    assert test_client.get("/users/5", headers=IDENTITY).json() == {"user_id": 5}
    assert test_client.get("/users/0").status_code == 404
    assert test_client.get("/crash/e1").status_code == 500
    events = delivered(client, sink)
    assert [e["event"] for e in events] == ["user viewed", "user viewed", "$exception"]
    assert events[0]["distinct_id"] == "user-1"
    assert events[2]["properties"]["$route"] == "/crash/{code}"
    assert events[2]["properties"]["$exception_message"] == "e1"
