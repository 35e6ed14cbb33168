"""A ticker task: how often the event loop got to run while something was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
TICK = 0.01


async def ticks_while(awaitable: Awaitable[T]) -> tuple[T, int]:
    """Await ``awaitable`` while a task ticks every 10 ms; its result and the ticks counted."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(TICK)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        stop.set()
        await task
    return result, ticks
