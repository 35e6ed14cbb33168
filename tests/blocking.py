"""Which waiting calls a piece of code makes in its own thread, seen by a profile hook.

A ``capture()`` that waited on the network would call into the socket layer or an HTTP client,
sleep, or wait on an event, a condition or a thread that the sender controls. The hook records
those calls as they are made, so a test asserts what the code does, not how fast a loaded
machine happened to schedule it.

Starting a thread waits until the new thread runs; that wait (the sender starting on a client's
first event) is not a wait on the network and is not recorded.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

NETWORK_MODULES = ("socket", "_socket", "ssl", "_ssl", "select", "selectors", "http.client",
                   "urllib3", "requests")
WAITS = frozenset({("threading", "wait"), ("threading", "wait_for"), ("threading", "join"),
                   ("time", "sleep")})


class WaitRecorder:
    """Counts network and waiting calls made while :meth:`watching` is active in a thread."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Record the calls this thread makes inside the ``with`` block."""
        previous = sys.getprofile()
        sys.setprofile(self._hook)
        try:
            yield
        finally:
            sys.setprofile(previous)

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            module = str(frame.f_globals.get("__name__", ""))
            name = frame.f_code.co_name
            if _inside_thread_start(frame.f_back):
                return
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or type(owner).__module__
            name = getattr(arg, "__name__", "")
        else:
            return
        if (module, name) in WAITS or _is_network(module):
            self.calls[f"{module}.{name}"] += 1


def _inside_thread_start(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs within ``Thread.start`` (its wait sits a few frames below it)."""
    for _ in range(4):
        if frame is None or frame.f_globals.get("__name__") != "threading":
            return False
        if frame.f_code.co_name == "start":
            return True
        frame = frame.f_back
    return False


def _is_network(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in NETWORK_MODULES)
