"""The ASGI middleware at the protocol level: raw scopes, hostile headers, concurrency."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any, Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory, delivered

Message = dict[str, Any]
App = Callable[[dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]  # noqa: E501


async def call(app: App, scope: dict[str, Any],
               incoming: list[Message] | None = None) -> list[Message]:
    """Run ``app`` for one scope; return what it sent."""
    queue = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(headers: list[tuple[bytes, bytes]] | None = None, path: str = "/") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers or [], "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    posthog.capture("hello")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_lifespan_messages_pass_through_and_shutdown_flushes(make_client: ClientFactory,
                                                             sink: LocalSink) -> None:
    client = make_client(flush_interval=60, flush_at=1000)
    received: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "lifespan.startup":
                client.capture("started", distinct_id="server")
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = asyncio.run(call(PostHogMiddleware(app, client=client), {"type": "lifespan"},
                            messages))
    assert received == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    assert [e["event"] for e in sink.events()] == ["started"]  # flushed before "complete"


def test_unknown_scope_types_pass_through_untouched(client_for_sink: Client) -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope["type"], posthog.get_tags()))

    asyncio.run(call(PostHogMiddleware(app, client=client_for_sink), {"type": "channels.custom"}))
    assert seen == [("channels.custom", {})]


def test_the_app_is_never_handed_a_consumed_or_buffered_body(client_for_sink: Client) -> None:
    chunks: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            chunks.append(message["body"])
            if not message.get("more_body"):
                break
        await hello(scope, receive, send)

    incoming = [{"type": "http.request", "body": b"a", "more_body": True},
                {"type": "http.request", "body": b"b", "more_body": False}]
    asyncio.run(call(PostHogMiddleware(app, client=client_for_sink), http_scope(), incoming))
    assert chunks == [b"a", b"b"]


@pytest.fixture
def client_for_sink(make_client: ClientFactory) -> Client:
    return make_client()


header_values = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\x00" * 10, b"\xff\xfe\xfd", b"a" * 1_000_000, b" ", b"\r\n"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(distinct_id=header_values, session_id=header_values, host=header_values,
       agent=header_values, forwarded=header_values)
def test_hostile_headers_never_break_a_request(
    client_for_sink: Client, distinct_id: bytes, session_id: bytes, host: bytes, agent: bytes,
    forwarded: bytes,
) -> None:
    headers = [(b"x-posthog-distinct-id", distinct_id), (b"x-posthog-session-id", session_id),
               (b"host", host), (b"user-agent", agent), (b"x-forwarded-for", forwarded)]
    app = PostHogMiddleware(hello, client=client_for_sink, trusted_proxies=["0.0.0.0/0"])
    sent = asyncio.run(call(app, http_scope(headers)))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"hello"


def test_a_thousand_concurrent_requests_keep_their_own_identity(make_client: ClientFactory,
                                                                sink: LocalSink) -> None:
    client = make_client(max_queue_size=10_000)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(random.random() / 50)
        request_id = dict(scope["headers"])[b"x-request"].decode()
        posthog.tag("request", request_id)
        await asyncio.sleep(random.random() / 50)
        posthog.capture("handled", properties={"expected": request_id})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": request_id.encode()})

    async def run_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=PostHogMiddleware(app, client=client))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(
                http.get(f"/r/{n}", headers={"X-POSTHOG-DISTINCT-ID": f"user-{n}",
                                             "X-POSTHOG-SESSION-ID": f"session-{n}",
                                             "X-Request": str(n)})
                for n in range(1000)
            ))

    responses = asyncio.run(run_all())
    assert [r.text for r in responses] == [str(n) for n in range(1000)]
    events = delivered(client, sink)
    assert len(events) == 1000
    for event in events:
        n = event["properties"]["expected"]
        assert event["distinct_id"] == f"user-{n}"
        assert event["properties"]["$session_id"] == f"session-{n}"
        assert event["properties"]["request"] == n
        assert event["properties"]["$request_path"] == f"/r/{n}"


def test_a_task_started_by_a_request_does_not_leak_into_the_next(make_client: ClientFactory,
                                                                 sink: LocalSink) -> None:
    client = make_client()
    background: list[asyncio.Task[None]] = []

    async def late_tagger() -> None:
        await asyncio.sleep(0.01)
        posthog.tag("late", True)
        posthog.capture("background")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/spawn":
            background.append(asyncio.get_running_loop().create_task(late_tagger()))
        await hello(scope, receive, send)

    async def run() -> None:
        wrapped = PostHogMiddleware(app, client=client)
        await call(wrapped, http_scope([(b"x-posthog-distinct-id", b"first")], "/spawn"))
        await asyncio.sleep(0.02)
        await call(wrapped, http_scope([(b"x-posthog-distinct-id", b"second")], "/next"))
        await asyncio.gather(*background)

    asyncio.run(run())
    events = {(e["event"], e["distinct_id"]): e["properties"] for e in delivered(client, sink)}
    assert events[("background", "first")]["late"] is True
    assert "late" not in events[("hello", "second")]
