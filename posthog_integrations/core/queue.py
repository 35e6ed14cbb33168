"""The bounded in-memory buffer between the calling threads and the sender."""

from __future__ import annotations

import collections
from typing import Any

Event = dict[str, Any]


class EventQueue:
    """FIFO of events with a size cap. ``put`` never blocks: when full it refuses the new event.

    ``deque.append`` and ``popleft`` are atomic, so producers take no lock. Under heavy contention
    the cap may be overshot by at most one event per producing thread, which keeps memory bounded.
    """

    __slots__ = ("_items", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: collections.deque[Event] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> bool:
        """Append ``event`` unless the queue is full; return whether it was accepted."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(event)
        return True

    def take(self, limit: int) -> list[Event]:
        """Remove and return up to ``limit`` events, oldest first.

        For one consumer at a time (the sender takes under its lock): producers only append,
        so the events counted here are still there to pop.
        """
        popleft = self._items.popleft
        return [popleft() for _ in range(min(limit, len(self._items)))]

    def clear(self) -> int:
        """Drop everything; return how many events were dropped."""
        count = len(self._items)
        self._items.clear()
        return count
