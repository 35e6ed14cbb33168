"""bind_context: a function run later, in a pool thread, a thread or a task, keeps its context."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import (
    Client,
    bind_context,
    get_context_distinct_id,
    get_tags,
    identify_context,
    new_context,
    tag,
)
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory, delivered

OTHER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_bind_other", default="unset")


def who() -> tuple[str | None, dict[str, Any]]:
    return get_context_distinct_id(), get_tags()


def bound_as(distinct_id: str, function: Any, **tags: Any) -> Any:
    """``function`` bound inside a context with ``distinct_id`` and ``tags``, closed again."""
    with new_context():
        identify_context(distinct_id)
        for name, value in tags.items():
            tag(name, value)
        bound = bind_context(function)
    assert get_context_distinct_id() is None
    return bound


def test_a_bound_function_submitted_to_a_pool_sees_the_bound_context() -> None:
    bound = bound_as("user-1", who, plan="pro")
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert pool.submit(bound).result(timeout=30) == ("user-1", {"plan": "pro"})


def test_a_bound_function_in_run_in_executor_sees_the_bound_context() -> None:
    async def main() -> tuple[str | None, dict[str, Any]]:
        with new_context():
            identify_context("user-2")
            tag("source", "loop")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, bind_context(who))

    assert asyncio.run(main()) == ("user-2", {"source": "loop"})


def test_a_bound_thread_target_sees_the_bound_context() -> None:
    seen: list[tuple[str | None, dict[str, Any]]] = []
    thread = threading.Thread(target=bound_as("user-3", lambda: seen.append(who())))
    thread.start()
    thread.join(30)
    assert seen == [("user-3", {})]


def test_20_concurrent_calls_of_one_bound_function_each_see_the_bound_identity() -> None:
    barrier = threading.Barrier(20)

    def work(number: int) -> tuple[str | None, dict[str, Any]]:
        barrier.wait(timeout=60)  # all 20 inside the bound function at the same time
        tag("call", number)  # each call's tag stays in that call
        barrier.wait(timeout=60)
        return who()

    bound = bound_as("user-4", work, plan="pro")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(bound, range(20), timeout=120))
    assert results == [("user-4", {"plan": "pro", "call": number}) for number in range(20)]


def test_an_unbound_function_in_a_pool_thread_sees_no_context() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool, new_context():
        identify_context("user-5")
        tag("plan", "pro")
        bound_first = pool.submit(bind_context(who)).result(timeout=30)
        unbound_after = pool.submit(who).result(timeout=30)  # the same pool thread, reused
    assert bound_first == ("user-5", {"plan": "pro"})
    assert unbound_after == (None, {})


def test_bound_outside_any_context_runs_outside_any_context() -> None:
    bound = bind_context(who)
    with new_context():
        identify_context("caller")
        tag("plan", "pro")
        assert bound() == (None, {})
        assert who() == ("caller", {"plan": "pro"})


def test_what_a_call_sets_stays_in_that_call() -> None:
    def retag() -> tuple[tuple[str | None, dict[str, Any]], str]:
        found = who(), OTHER_VAR.get()
        identify_context("changed")
        tag("plan", "free")
        OTHER_VAR.set("changed")
        return found

    bound = bound_as("bound", retag, plan="pro")
    with new_context():
        identify_context("caller")
        assert bound() == bound() == (("bound", {"plan": "pro"}), "unset")  # the next call too
        assert who() == ("caller", {})
    assert OTHER_VAR.get() == "unset"


def test_other_context_variables_travel_too() -> None:
    token = OTHER_VAR.set("at bind time")
    try:
        bound = bind_context(OTHER_VAR.get)
    finally:
        OTHER_VAR.reset(token)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(bound).result(timeout=30) == "at bind time"
        assert pool.submit(OTHER_VAR.get).result(timeout=30) == "unset"


def test_arguments_result_metadata_and_exceptions_pass_through_unchanged(
    sink: LocalSink, make_client: ClientFactory,
) -> None:
    client = make_client()
    failure = ValueError("boom")

    def compute(a: int, b: int = 0, *, scale: int = 1) -> int:
        """Add and scale."""
        if a < 0:
            raise failure
        return (a + b) * scale

    with client.new_context():
        identify_context("user-6")
        bound = bind_context(compute)
    assert bound(1, 2, scale=3) == 9
    assert (bound.__name__, bound.__doc__, bound.__wrapped__) == (  # type: ignore[attr-defined]
        "compute", "Add and scale.", compute)
    with pytest.raises(ValueError) as raised:
        bound(-1)
    assert raised.value is failure
    client.capture("after")
    assert [event["event"] for event in delivered(client, sink)] == ["after"]  # not captured


def test_a_bound_function_may_call_itself() -> None:
    def countdown(number: int) -> list[str | None]:
        here = get_context_distinct_id()
        return [here] if number == 0 else [here, *bound(number - 1)]

    bound = bound_as("user-7", countdown)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(bound, 3).result(timeout=30) == ["user-7"] * 4


def test_a_bound_coroutine_function_runs_every_step_in_the_bound_context() -> None:
    steps: list[tuple[str | None, dict[str, Any]]] = []

    async def work(times: int) -> str:
        for _ in range(times):
            steps.append(who())
            await asyncio.sleep(0)
        tag("inside", True)
        return "done"

    bound = bound_as("user-8", work, plan="pro")
    assert asyncio.iscoroutinefunction(bound)

    async def main() -> tuple[str, tuple[str | None, dict[str, Any]]]:
        with new_context():
            identify_context("caller")
            result = await bound(3)
            return result, who()

    assert asyncio.run(main()) == ("done", ("caller", {}))
    assert steps == [("user-8", {"plan": "pro"})] * 3


def test_a_cancelled_bound_coroutine_cleans_up_in_the_bound_context() -> None:
    cleaned_up_as: list[str | None] = []

    async def wait_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up_as.append(get_context_distinct_id())

    bound = bound_as("user-9", wait_forever)

    async def main() -> None:
        task = asyncio.ensure_future(bound())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned_up_as == ["user-9"]


def test_an_exception_from_a_bound_coroutine_passes_through_unchanged() -> None:
    failure = KeyError("missing")

    async def fail() -> None:
        await asyncio.sleep(0)
        raise failure

    with pytest.raises(KeyError) as raised:
        asyncio.run(bound_as("user-10", fail)())
    assert raised.value is failure


def test_a_bound_generator_runs_every_step_in_the_bound_context() -> None:
    def numbers() -> Generator[tuple[int, str | None], int, str]:
        total = 0
        while total < 3:
            total += yield total, get_context_distinct_id()
        return "finished"

    bound = bound_as("user-11", numbers)
    with new_context():
        identify_context("consumer")
        steps = bound()
        assert next(steps) == (0, "user-11")
        assert steps.send(2) == (2, "user-11")
        with pytest.raises(StopIteration) as stopped:
            steps.send(5)
        assert stopped.value.value == "finished"
        assert get_context_distinct_id() == "consumer"


def test_binding_a_partial_keeps_its_arguments() -> None:
    pair = functools.partial(lambda a, b: (a, b, get_context_distinct_id()), 1)
    bound = bound_as("user-12", pair)
    assert bound(2) == (1, 2, "user-12")


def test_the_client_offers_bind_context_too() -> None:
    assert Client.bind_context is bind_context
    assert posthog.bind_context is bind_context
    assert "bind_context" in posthog.__all__


def test_events_captured_in_a_bound_function_arrive_with_its_identity_and_tags(
    sink: LocalSink, make_client: ClientFactory,
) -> None:
    client = make_client()

    def export(rows: int) -> None:
        posthog.capture("report exported", properties={"rows": rows})  # routed to the client

    with client.new_context():
        identify_context("user-13")
        posthog.set_context_session("session-13")
        tag("plan", "pro")
        bound = bind_context(export)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(bound, rows) for rows in range(5)]:
            future.result(timeout=30)
        pool.submit(client.capture, "unbound").result(timeout=30)
    events = delivered(client, sink)
    exported = [event for event in events if event["event"] == "report exported"]
    assert sorted(event["properties"]["rows"] for event in exported) == list(range(5))
    for event in exported:
        assert event["distinct_id"] == "user-13"
        assert event["properties"]["$session_id"] == "session-13"
        assert event["properties"]["plan"] == "pro"
    [unbound] = [event for event in events if event["event"] == "unbound"]
    assert "plan" not in unbound["properties"]
    assert unbound["properties"]["$process_person_profile"] is False


def test_binding_an_async_generator_is_refused_with_a_way_out() -> None:
    async def rows() -> Any:
        yield 1

    with pytest.raises(TypeError, match="Bind the coroutine function that consumes it"):
        bind_context(rows)
