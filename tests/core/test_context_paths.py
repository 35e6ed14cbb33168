"""Which common ways of running code elsewhere carry the current context, and which do not.

What the README's "Threads and executors" table says, each row asserted: asyncio tasks and the
helpers that copy the ``contextvars`` context (``asyncio.to_thread``, Starlette's
``run_in_threadpool``, asgiref's ``sync_to_async``) carry it; executors and threads do not, and
:func:`posthog_integrations.bind_context` is the way to carry it there.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from posthog_integrations import (
    get_context_distinct_id,
    get_tags,
    identify_context,
    new_context,
    tag,
)

Seen = tuple[Any, dict[str, Any]]
CARRIED: Seen = ("user-1", {"plan": "pro"})
# Free-threaded builds of Python 3.14 start a thread in a copy of the starting thread's
# context (a pool's threads start at a submit): there, even unbound work carries it.
IN_A_NEW_THREAD: Seen = CARRIED if getattr(sys.flags, "thread_inherit_context", 0) else (None, {})


def who() -> Seen:
    return get_context_distinct_id(), get_tags()


def open_context() -> new_context:
    context = new_context()
    context.__enter__()
    identify_context("user-1")
    tag("plan", "pro")
    return context


async def in_a_context(run_elsewhere: Any) -> Seen:
    """What ``who`` sees when run by ``run_elsewhere`` from inside a context."""
    with new_context():
        identify_context("user-1")
        tag("plan", "pro")
        seen: Seen = await run_elsewhere()
        assert who() == CARRIED  # and the context here is intact
        return seen


@pytest.mark.parametrize("start", ["create_task", "gather"])
def test_asyncio_tasks_carry_the_context(start: str) -> None:
    async def who_later() -> Seen:
        await asyncio.sleep(0)
        return who()

    async def run_elsewhere() -> Seen:
        if start == "gather":
            [seen] = await asyncio.gather(who_later())
            return seen
        return await asyncio.create_task(who_later())

    assert asyncio.run(in_a_context(run_elsewhere)) == CARRIED


def test_asyncio_to_thread_carries_the_context() -> None:
    async def run_elsewhere() -> Seen:
        return await asyncio.to_thread(who)

    assert asyncio.run(in_a_context(run_elsewhere)) == CARRIED


def test_starlette_run_in_threadpool_carries_the_context() -> None:
    pytest.importorskip("starlette")
    from starlette.concurrency import run_in_threadpool

    async def run_elsewhere() -> Seen:
        return await run_in_threadpool(who)

    assert asyncio.run(in_a_context(run_elsewhere)) == CARRIED


@pytest.mark.parametrize("thread_sensitive", [True, False])
def test_asgiref_sync_to_async_carries_the_context(thread_sensitive: bool) -> None:
    pytest.importorskip("asgiref")
    from asgiref.sync import sync_to_async

    async def run_elsewhere() -> Seen:
        return await sync_to_async(who, thread_sensitive=thread_sensitive)()

    assert asyncio.run(in_a_context(run_elsewhere)) == CARRIED


def test_thread_pool_submit_does_not_carry_the_context() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        context = open_context()
        try:
            seen = pool.submit(who).result(timeout=30)
        finally:
            context.__exit__(None, None, None)
    assert seen == IN_A_NEW_THREAD


def test_run_in_executor_does_not_carry_the_context() -> None:
    async def run_elsewhere() -> Seen:
        return await asyncio.get_running_loop().run_in_executor(None, who)

    assert asyncio.run(in_a_context(run_elsewhere)) == IN_A_NEW_THREAD


def test_a_new_thread_does_not_carry_the_context() -> None:
    seen: list[Seen] = []
    context = open_context()
    try:
        thread = threading.Thread(target=lambda: seen.append(who()))
        thread.start()
        thread.join(30)
    finally:
        context.__exit__(None, None, None)
    assert seen == [IN_A_NEW_THREAD]
