"""aflush and ashutdown: the sync bounds and results, without blocking the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import posthog_integrations as posthog
from posthog_integrations.core.off_loop import run_off_loop
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY, ClientFactory
from tests.core.async_ticks import ticks_while

SLOW_ANSWER = 1.5  # the sink's delay: 150 ticks of 10 ms if the loop runs freely
MIN_TICKS = 20  # generous for a loaded 2-core box, and far more than a blocked loop gets
SLACK = 5.0


def hanging(count: int = 10) -> list[ScriptedResponse]:
    return [ScriptedResponse(hang=True)] * count


def test_aflush_waits_without_blocking_the_loop(sink: LocalSink,
                                                make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=SLOW_ANSWER))
    client = make_client(flush_interval=60)
    client.capture("slow", distinct_id="u")

    delivered, ticks = asyncio.run(ticks_while(client.aflush(timeout=10)))

    assert delivered is True
    assert ticks >= MIN_TICKS
    assert [e["event"] for e in sink.events()] == ["slow"]


def test_aflush_against_a_hanging_endpoint_returns_false_within_its_timeout(
        sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(*hanging())
    client = make_client(flush_interval=60)
    client.capture("stuck", distinct_id="u")

    started = time.monotonic()
    delivered, ticks = asyncio.run(ticks_while(client.aflush(timeout=0.5)))

    assert delivered is False
    assert time.monotonic() - started < 0.5 + SLACK
    assert ticks >= 1


@pytest.mark.parametrize("script", [[], [503]])
def test_aflush_answers_as_flush_does(sink: LocalSink, make_client: ClientFactory,
                                      script: list[int]) -> None:
    sink.script(*script)
    sync_client, async_client = make_client(flush_interval=60), make_client(flush_interval=60)
    sync_client.capture("a", distinct_id="u")
    async_client.capture("a", distinct_id="u")

    assert asyncio.run(async_client.aflush()) == sync_client.flush() is True
    assert async_client.stats().sent == sync_client.stats().sent == 1


def test_aflush_with_nothing_queued_is_true(make_client: ClientFactory) -> None:
    assert asyncio.run(make_client().aflush()) is True


def test_ashutdown_delivers_and_closes_without_blocking_the_loop(
        sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=SLOW_ANSWER))
    client = make_client(flush_interval=60)
    client.capture("last", distinct_id="u")

    stopped, ticks = asyncio.run(ticks_while(client.ashutdown(timeout=10)))

    assert stopped is True
    assert ticks >= MIN_TICKS
    assert client.closed
    assert [e["event"] for e in sink.events()] == ["last"]
    assert client.capture("after", distinct_id="u") is None


def test_ashutdown_gives_up_within_its_timeout_and_counts_the_loss(
        sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(*hanging())
    client = make_client(flush_interval=60)
    client.capture("stuck", distinct_id="u")

    started = time.monotonic()
    stopped = asyncio.run(client.ashutdown(timeout=0.5))

    assert stopped is False
    assert time.monotonic() - started < 0.5 + SLACK
    assert client.stats().dropped_by_reason["shutdown"] == 1


def test_a_cancelled_aflush_still_finishes_its_bounded_flush(
        sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=SLOW_ANSWER))
    client = make_client(flush_interval=60)
    client.capture("kept", distinct_id="u")

    async def cancel_soon() -> None:
        task = asyncio.create_task(client.aflush(timeout=10))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())  # returns once the loop's executor finished the flush

    assert [e["event"] for e in sink.events()] == ["kept"]
    assert client.stats().sent == 1


def test_a_cancelled_ashutdown_still_shuts_down(sink: LocalSink,
                                                make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=SLOW_ANSWER))
    client = make_client(flush_interval=60)
    client.capture("kept", distinct_id="u")

    async def cancel_at_once() -> None:
        task = asyncio.create_task(client.ashutdown(timeout=10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_at_once())

    assert client.closed
    assert client.stats().sent == 1


def test_without_an_asyncio_loop_the_work_runs_in_the_caller() -> None:
    """Another event loop (trio) has no asyncio executor: the bounded work runs inline."""
    coroutine = run_off_loop(lambda: "done")
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)
    assert finished.value.value == "done"


@pytest.fixture
def default_client_for(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    posthog.configure(api_key=API_KEY, host=sink.url, flush_interval=60,
                      retry_base_delay=0.02)
    yield
    posthog.shutdown()
    monkeypatch.undo()
    posthog.configure()


@pytest.mark.usefixtures("default_client_for")
def test_module_level_aflush_and_ashutdown(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(delay=SLOW_ANSWER))
    posthog.capture("first", distinct_id="u")

    flushed, ticks = asyncio.run(ticks_while(posthog.aflush(timeout=10)))
    assert flushed is True
    assert ticks >= MIN_TICKS
    assert [e["event"] for e in sink.events()] == ["first"]

    client = posthog.get_client()
    posthog.capture("second", distinct_id="u")
    assert asyncio.run(posthog.ashutdown(timeout=10)) is True
    assert client.closed
    assert [e["event"] for e in sink.events()] == ["first", "second"]
