"""Exception storms: an endpoint failing on every request sends a few events, not thousands.

Each kind of exception (its class, and the file and line it was raised at) has a token bucket:
``burst`` events pass at once, then ``per_second`` more each second. The default, 30 then 2 per
second per kind, sends every exception of a normal day and the first half minute of a sudden
failure in full detail (enough to see which users, paths and arguments it hits), then caps an
endpoint failing at 1,000 requests per second to 2 events a second, 500 times fewer, while other
kinds keep their own buckets. What is held back is counted under ``exception_storm`` in
``stats()``, logged at most once a minute, and the next event of that kind sent carries
``$exception_storm_held_back``: how many were held back since the previous one.

The buckets live in a bounded LRU map (``MAX_KINDS``), so a flood of distinct kinds cannot grow
memory: the least recently seen kind is forgotten, and starts with a full bucket if it returns.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import types
import weakref
from typing import Callable

from .exceptions import mark_captured, traceback_of
from .notices import Notices
from .stats import Counters

DEFAULT_BURST = 30
DEFAULT_PER_SECOND = 2.0
# Far more kinds than an application fails with at once; each one costs about 200 bytes.
MAX_KINDS = 1000
STORM_REASON = "exception_storm"
HELD_BACK_PROPERTY = "$exception_storm_held_back"
# What an exception held back is remembered with, in place of the uuid of an event that reported
# it, so that another path (a framework's log of the same exception) does not report it either.
HELD_BACK = "held back: exception storm"
_LIBRARY_PREFIX = "posthog_integrations."

Kind = tuple[str, str, str, int]  # class module, class qualified name, file, line
Clock = Callable[[], float]


class _Bucket:
    __slots__ = ("held_back", "tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.held_back = 0


class StormLimiter:
    """Token buckets per kind of exception; ``limit=None`` lets every exception through.

    :meth:`admit` is the one call a capture path makes; it is thread-safe and takes one lock.
    """

    def __init__(self, limit: tuple[int, float] | None, counters: Counters, notices: Notices,
                 *, max_kinds: int = MAX_KINDS, clock: Clock = time.monotonic) -> None:
        self._enabled = limit is not None
        self._burst, self._per_second = limit if limit is not None else (0, 0.0)
        self._counters = counters
        self._notices = notices
        self._max_kinds = max_kinds
        self._clock = clock
        self._reset()
        _live_limiters.add(self)

    def _reset(self) -> None:
        """Forget every kind, with a new lock (in a forked child the old one may be held)."""
        self._lock = threading.Lock()
        self._buckets: collections.OrderedDict[Kind, _Bucket] = collections.OrderedDict()

    @property
    def kinds(self) -> int:
        """How many kinds of exception are tracked now (at most ``max_kinds``)."""
        return len(self._buckets)

    def admit(self, error: BaseException) -> int | None:
        """Whether ``error`` may be sent: None to hold it back (counted, logged, and marked as
        seen), else how many of its kind were held back since the last one sent (often 0)."""
        if not self._enabled:
            return 0
        kind = kind_of(error)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(kind)
            if bucket is None:
                self._buckets[kind] = _Bucket(self._burst - 1.0, now)
                if len(self._buckets) > self._max_kinds:
                    self._buckets.popitem(last=False)
                return 0
            self._buckets.move_to_end(kind)
            tokens = min(float(self._burst),
                         bucket.tokens + (now - bucket.updated) * self._per_second)
            bucket.updated = now
            if tokens >= 1.0:
                bucket.tokens = tokens - 1.0
                held_back, bucket.held_back = bucket.held_back, 0
                return held_back
            bucket.tokens = tokens
            bucket.held_back += 1
        self._held_back(error, kind)
        return None

    def _held_back(self, error: BaseException, kind: Kind) -> None:
        total = self._counters.add(f"dropped.{STORM_REASON}")
        mark_captured(error, HELD_BACK)
        self._notices.warn(
            STORM_REASON, "exception storm: %s at %s:%d is captured faster than %g a second "
            "after a burst of %d; repeats are held back (%d so far, under stats() reason %r)",
            kind[1], kind[2], kind[3], self._per_second, self._burst, total, STORM_REASON)


def kind_of(error: BaseException) -> Kind:
    """The kind ``error`` is limited as: its class and where it was raised.

    Where it was raised is the innermost frame of its traceback; an exception never raised
    (no traceback) is placed at the first caller outside this library.
    """
    cls = type(error)
    traceback = traceback_of(error)
    if traceback is not None:
        while traceback.tb_next is not None:
            traceback = traceback.tb_next
        code = traceback.tb_frame.f_code
        return cls.__module__, cls.__qualname__, code.co_filename, traceback.tb_lineno
    frame = _caller_outside_library()
    if frame is None:
        return cls.__module__, cls.__qualname__, "", 0
    return cls.__module__, cls.__qualname__, frame.f_code.co_filename, frame.f_lineno


def _caller_outside_library() -> types.FrameType | None:
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
            _LIBRARY_PREFIX):
        frame = frame.f_back
    return frame


_live_limiters: weakref.WeakSet[StormLimiter] = weakref.WeakSet()


def reset_all() -> None:
    """Every limiter forgets every kind, with a fresh lock. A forked child starts so (its
    parent's storm is not its own), and so does each recording of
    :func:`posthog_integrations.testing.capture_events` (one test's exceptions must not hold
    back the next test's)."""
    for limiter in list(_live_limiters):
        limiter._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_all)
