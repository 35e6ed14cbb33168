"""The lifespan shutdown flush runs on the async path: the loop keeps serving, within its bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.asgi.test_protocol import call
from tests.conftest import ClientFactory

TICK = 0.01
SLACK = 5.0


def lifespan_app(client: Client, ticks_during_flush: list[int]) -> Any:
    """An app that captures at startup and ticks in a task; it notes the ticks counted while
    the middleware flushed before forwarding ``lifespan.shutdown.complete``."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(TICK)
            ticks += 1

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.create_task(ticker())
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                client.capture("started", distinct_id="server")
                await send({"type": "lifespan.startup.complete"})
            else:
                before = ticks
                await send({"type": "lifespan.shutdown.complete"})
                ticks_during_flush.append(ticks - before)
                task.cancel()
                return

    return app


def run_lifespan(client: Client, flush_timeout: float) -> tuple[list[str], list[int]]:
    ticks: list[int] = []
    middleware = PostHogMiddleware(lifespan_app(client, ticks), client=client,
                                   flush_timeout=flush_timeout)
    sent = asyncio.run(call(middleware, {"type": "lifespan"},
                            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]))
    return [message["type"] for message in sent], ticks


def test_the_shutdown_flush_lets_the_loop_run(sink: LocalSink,
                                              make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=1.5))
    client = make_client(flush_interval=60)

    sent, [ticks] = run_lifespan(client, flush_timeout=10)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ticks >= 20  # about 150 if the loop runs freely during the 1.5 s answer
    assert [e["event"] for e in sink.events()] == ["started"]


def test_the_shutdown_flush_keeps_its_bound(sink: LocalSink,
                                            make_client: ClientFactory) -> None:
    sink.script(*[ScriptedResponse(hang=True)] * 10)
    client = make_client(flush_interval=60)

    started = time.monotonic()
    sent, _ = run_lifespan(client, flush_timeout=0.5)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert time.monotonic() - started < 0.5 + SLACK
    assert client.stats().sent == 0
