"""Waiting for the sender from async code without blocking the event loop.

The bounded, blocking wait runs in the loop's default executor. The awaiting task is shielded
from the work: cancelling it ends the ``await`` at once, while the flush, shutdown or delivery
it started goes on in its worker thread until it finishes or its timeout passes (its outcome is
still counted in stats), so no thread is left waiting on a result nobody reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


async def run_off_loop(work: Callable[[], T]) -> T:
    """``work()``, run in a worker thread while the event loop keeps running.

    Without a running asyncio loop (trio, say), or once the loop's executor takes no more work
    (the loop is closing), it runs in the calling thread: ``work`` is always bounded.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return work()
    try:
        future = loop.run_in_executor(None, work)
    except RuntimeError:  # the default executor is shut down
        return work()
    return await asyncio.shield(future)


async def wait_off_loop(wait: Callable[[Any], T], timeout: Any) -> T:
    """``wait(seconds)`` off the loop, ``seconds`` being what is left of ``timeout`` counted
    from this call, so time spent queued for a worker thread counts against the bound."""
    started = time.monotonic()

    def remaining() -> T:
        try:
            left = max(0.0, timeout - (time.monotonic() - started))
        except TypeError:  # not a number: the sync method reports it as it always does
            left = timeout
        return wait(left)

    return await run_off_loop(remaining)
