"""The context engine: inheritance, isolation across threads and tasks, routing."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import posthog_integrations as posthog
from posthog_integrations import (
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    new_context,
    scoped,
    set_context_session,
    tag,
)
from posthog_integrations.core import context as context_engine
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory


def test_setters_outside_a_context_do_nothing() -> None:
    tag("a", 1)
    identify_context("u")
    set_context_session("s")
    assert (get_tags(), get_context_distinct_id(), get_context_session_id()) == ({}, None, None)


def test_child_inherits_and_overrides_without_changing_the_parent() -> None:
    with new_context():
        identify_context("parent")
        set_context_session("s1")
        tag("plan", "pro")
        tag("region", "eu")
        with new_context():
            assert get_context_distinct_id() == "parent"
            tag("plan", "free")
            identify_context("child")
            assert get_tags() == {"plan": "free", "region": "eu"}
            assert get_context_session_id() == "s1"
        assert get_tags() == {"plan": "pro", "region": "eu"}
        assert get_context_distinct_id() == "parent"
    assert get_tags() == {}


def test_fresh_context_starts_empty() -> None:
    with new_context():
        identify_context("parent")
        tag("plan", "pro")
        with new_context(fresh=True):
            assert (get_tags(), get_context_distinct_id()) == ({}, None)


def test_siblings_do_not_see_each_other() -> None:
    with new_context():
        with new_context():
            tag("first", 1)
        with new_context():
            assert get_tags() == {}


def test_get_tags_returns_a_copy() -> None:
    with new_context():
        tag("a", 1)
        get_tags()["a"] = 2
        assert get_tags() == {"a": 1}


def test_task_child_that_tags_never_changes_its_parent() -> None:
    async def child() -> None:
        tag("from_child", True)
        identify_context("child")
        set_context_session("child-session")

    async def parent() -> tuple[dict[str, object], str | None, str | None]:
        with new_context():
            identify_context("parent")
            tag("plan", "pro")
            await asyncio.create_task(child())
            return get_tags(), get_context_distinct_id(), get_context_session_id()

    assert asyncio.run(parent()) == ({"plan": "pro"}, "parent", None)


def test_events_carry_context_and_explicit_arguments_win(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    with client.new_context():
        identify_context("ctx-user")
        set_context_session("ctx-session")
        tag("plan", "pro")
        tag("source", "context")
        client.capture("implicit")
        client.capture("explicit", distinct_id="arg-user",
                       properties={"source": "call", "$session_id": "call-session"})
    client.capture("outside")
    client.flush()
    implicit, explicit, outside = sink.events()
    assert implicit["distinct_id"] == "ctx-user"
    assert implicit["properties"]["plan"] == "pro"
    assert implicit["properties"]["$session_id"] == "ctx-session"
    assert explicit["distinct_id"] == "arg-user"
    assert explicit["properties"]["source"] == "call"
    assert explicit["properties"]["$session_id"] == "call-session"
    assert "plan" not in outside["properties"]
    assert outside["properties"]["$process_person_profile"] is False


def test_set_uses_the_context_identity(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    with client.new_context():
        identify_context("ctx-user")
        client.set(properties={"plan": "pro"})
    client.flush()
    assert sink.events()[0]["distinct_id"] == "ctx-user"


def test_module_calls_route_to_the_bound_client(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    with client.new_context():
        identify_context("routed")
        posthog.capture("through the module")
    client.flush()
    [event] = sink.events()
    assert event["distinct_id"] == "routed"


def test_300_concurrent_tasks_keep_their_own_identity(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(max_queue_size=50_000)

    async def request(number: int) -> None:
        with client.new_context():
            identify_context(f"user-{number}")
            set_context_session(f"session-{number}")
            await asyncio.sleep(random.random() / 100)
            tag("request", number)
            await asyncio.sleep(random.random() / 100)
            client.capture("handled", properties={"expected": number})

    async def main() -> None:
        await asyncio.gather(*(request(number) for number in range(300)))

    asyncio.run(main())
    client.flush()
    events = sink.events()
    assert len(events) == 300
    for event in events:
        number = event["properties"]["expected"]
        assert event["distinct_id"] == f"user-{number}"
        assert event["properties"]["$session_id"] == f"session-{number}"
        assert event["properties"]["request"] == number


def test_100_threads_keep_their_own_identity(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    barrier = threading.Barrier(100)

    @client.scoped()
    def work(number: int) -> None:
        identify_context(f"user-{number}")
        barrier.wait()
        tag("worker", number)
        client.capture("threaded", properties={"expected": number})

    with ThreadPoolExecutor(max_workers=100) as pool:
        list(pool.map(work, range(100)))
    client.flush()
    events = sink.events()
    assert len(events) == 100
    assert all(e["distinct_id"] == f"user-{e['properties']['expected']}" for e in events)
    assert all(e["properties"]["worker"] == e["properties"]["expected"] for e in events)


def test_scoped_wraps_sync_functions() -> None:
    @scoped()
    def handler() -> dict[str, object]:
        tag("inside", True)
        return get_tags()

    assert handler() == {"inside": True}
    assert get_tags() == {}
    assert handler.__name__ == "handler"


def test_scoped_covers_the_awaited_body_of_async_functions() -> None:
    @scoped()
    async def handler() -> tuple[dict[str, object], dict[str, object]]:
        tag("before_await", True)
        await asyncio.sleep(0)
        tag("after_await", True)
        await asyncio.sleep(0)
        return get_tags(), {"id": get_context_distinct_id()}

    async def main() -> tuple[object, dict[str, object]]:
        with new_context():
            identify_context("outer")
            coroutine = handler()  # the context must wrap execution, not creation
            tag("outer_tag", 1)
            result = await coroutine
            return result, get_tags()

    (inner_tags, inner_id), outer_tags = asyncio.run(main())  # type: ignore[misc]
    assert inner_tags == {"outer_tag": 1, "before_await": True, "after_await": True}
    assert inner_id == {"id": "outer"}
    assert outer_tags == {"outer_tag": 1}


def test_a_scoped_generator_keeps_its_context_from_its_consumer() -> None:
    @scoped()
    def numbers() -> Iterator[tuple[str | None, dict[str, object]]]:
        identify_context("inside")
        tag("inner", True)
        yield get_context_distinct_id(), get_tags()
        yield get_context_distinct_id(), get_tags()

    seen_inside, seen_outside = [], []
    with new_context():
        identify_context("consumer")
        tag("outer", 1)
        for item in numbers():
            seen_inside.append(item)
            seen_outside.append((get_context_distinct_id(), get_tags()))
            tag("outer", 2)  # the generator started from a copy: it does not see this
    assert seen_inside == [("inside", {"outer": 1, "inner": True})] * 2
    assert seen_outside == [("consumer", {"outer": 1}), ("consumer", {"outer": 2})]
    assert numbers.__name__ == "numbers"


def test_a_scoped_generator_closed_early_cleans_up_in_its_own_context() -> None:
    cleaned_up_as: list[str | None] = []

    @scoped()
    def stream() -> Iterator[int]:
        identify_context("inside")
        try:
            with new_context():  # held open across the yields: safe here
                tag("nested", True)
                yield 1
                yield 2
        finally:
            cleaned_up_as.append(get_context_distinct_id())

    with new_context():
        identify_context("consumer")
        items = stream()
        assert next(items) == 1
        assert (get_context_distinct_id(), get_tags()) == ("consumer", {})
        items.close()
        assert (get_context_distinct_id(), get_tags()) == ("consumer", {})
    assert cleaned_up_as == ["inside"]
    assert get_context_distinct_id() is None


def test_a_scoped_generator_takes_sends_throws_and_returns() -> None:
    @scoped()
    def echo() -> Generator[object, object, str]:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "caught"
        return "done"

    items = echo()
    assert next(items) == "ready"
    assert items.send("x") == "got x"
    assert items.throw(KeyError("k")) == "caught"
    with pytest.raises(StopIteration) as stopped:
        next(items)
    assert stopped.value.value == "done"


def test_an_exception_escaping_a_scoped_generator_is_captured_once_with_its_context(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()

    @client.scoped()
    def failing() -> Iterator[int]:
        identify_context("generator-user")
        yield 1
        raise ValueError("broken stream")

    with pytest.raises(ValueError, match="broken stream"):
        list(failing())
    client.flush()
    [error] = sink.events(event="$exception")
    assert error["distinct_id"] == "generator-user"


def test_scoped_refuses_async_generators_and_names_a_safe_way() -> None:
    with pytest.raises(TypeError, match="around the loop that consumes it"):

        @scoped()
        async def stream() -> AsyncIterator[int]:
            yield 1


def test_a_context_left_in_another_contextvars_context_is_reported(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context_engine, "_crossed_warned_at", -context_engine._WARNING_INTERVAL)
    entered = new_context()
    contextvars.copy_context().run(entered.__enter__)
    entered.__exit__(None, None, None)  # here, not where it was entered: it changes nothing
    assert get_context_distinct_id() is None
    [record] = [r for r in caplog.records if "entered in" in r.getMessage()]
    assert record.levelno == logging.WARNING


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_starts_outside_every_context() -> None:
    with new_context():
        identify_context("parent")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write_end, (get_context_distinct_id() or "none").encode())
            os._exit(0)
        os.close(write_end)
        seen = os.read(read_end, 100).decode()
        os.close(read_end)
        os.waitpid(pid, 0)
        assert get_context_distinct_id() == "parent"
    assert seen == "none"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no string form")


def test_an_id_without_a_string_form_never_raises_and_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    with posthog.new_context():
        posthog.identify_context("user-1")
        posthog.set_context_session("session-1")
        with caplog.at_level(logging.WARNING, logger="posthog_integrations"):
            posthog.identify_context(Unprintable())
            posthog.set_context_session(Unprintable())
        assert posthog.get_context_distinct_id() == "user-1"
        assert posthog.get_context_session_id() == "session-1"
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "identify_context() ignored a distinct id of type Unprintable",
        "set_context_session() ignored a session id of type Unprintable",
    ]
