"""Record the events an app captures, in memory, instead of sending them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, overload

from posthog_integrations.core import client as client_module
from posthog_integrations.core.serialization import encode_event
from posthog_integrations.core.storms import reset_all as reset_storm_limits

Event = dict[str, Any]


class CapturedEvents(Sequence[Event]):
    """The events captured while recording, oldest first, as they would have been sent.

    Each event is a dict with ``event``, ``distinct_id``, ``properties``, ``uuid`` and
    ``timestamp``, after the client's ``before_send``. Safe to read while other threads capture.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        sent = json.loads(encode_event(event))  # as the sender would post it: JSON types only
        with self._lock:
            self._events.append(sent)

    def _snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._snapshot()[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._snapshot())

    def __repr__(self) -> str:
        return f"<CapturedEvents {self.names()!r}>"

    def names(self) -> list[str]:
        """The event names, in the order they were captured."""
        return [event["event"] for event in self._snapshot()]

    def named(self, name: str) -> list[Event]:
        """The events called ``name``."""
        return [event for event in self._snapshot() if event["event"] == name]

    def for_distinct_id(self, distinct_id: str) -> list[Event]:
        """The events attributed to ``distinct_id``."""
        return [event for event in self._snapshot() if event["distinct_id"] == distinct_id]

    def one(self, name: str | None = None, *, distinct_id: str | None = None) -> Event:
        """The only event matching ``name`` and ``distinct_id``; AssertionError otherwise."""
        found = [event for event in self._snapshot()
                 if (name is None or event["event"] == name)
                 and (distinct_id is None or event["distinct_id"] == distinct_id)]
        if len(found) != 1:
            wanted = ", ".join(f"{key}={value!r}" for key, value in
                               (("name", name), ("distinct_id", distinct_id)) if value is not None)
            raise AssertionError(f"expected one event ({wanted or 'any'}), found {len(found)} "
                                 f"among {self.names()!r}")
        return found[0]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        with self._lock:
            self._events.clear()


_lock = threading.Lock()


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Record what every client captures inside the block, instead of sending it.

    Clients without an API key record too, so tests need no configuration. Nothing goes to
    the network. Blocks nest: the inner one records alone while it lasts. Each block starts
    with the exception storm limits' buckets full, so no test is held back by an earlier one.
    """
    events = CapturedEvents()
    reset_storm_limits()
    with _lock:
        previous = client_module._recorder
        client_module.set_recorder(events.record)
    try:
        yield events
    finally:
        with _lock:
            client_module.set_recorder(previous)
