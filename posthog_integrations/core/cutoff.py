"""A hard deadline for one HTTP request, from connecting to the last byte of the answer.

``requests`` applies its timeout to each socket operation, so a server that sends a byte now and
then never trips it. While a :class:`Cutoff` is active in a thread, the connections of
:class:`CutoffAdapter` tell it which socket that thread's request uses (when a pooled one is
reused, or a new one has connected); at the deadline one watchdog thread, shared by every
request of the process, shuts that socket down, and the read blocked on it fails at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter

_active = threading.local()
_POLL_WHILE_CONNECTING = 0.02  # the socket exists only once connected: look again this often


class Cutoff:
    """Cuts the connection of the request made in this thread once ``seconds`` have passed."""

    __slots__ = ("_lock", "_socket", "done", "fired", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.done = False
        self._lock = threading.Lock()
        self._socket: Any = None

    def __enter__(self) -> Cutoff:
        _active.cutoff = self
        _watchdog.watch(self, time.monotonic() + self.seconds)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _active.cutoff = None
        with self._lock:
            self._socket = None
            self.done = True

    def use(self, sock: Any) -> None:
        """The request now runs over ``sock``."""
        with self._lock:
            self._socket = sock

    def expire(self) -> bool:
        """Cut the connection now; False when it is not connected yet (ask again soon)."""
        with self._lock:
            if self.done:
                return True
            if self._socket is None:
                return False
            self.fired = True
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            return True


class _Watchdog:
    """One daemon thread that expires every active cutoff at its deadline.

    Started on the first request; a request whose cutoff is finished before its deadline costs
    a heap push and nothing else. When no thread can start (the interpreter is exiting) only
    the socket timeouts apply.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._deadlines: list[tuple[float, int, Cutoff]] = []
        self._order = itertools.count()  # ties never compare two cutoffs
        self._thread: threading.Thread | None = None

    def watch(self, cutoff: Cutoff, deadline: float) -> None:
        with self._condition:
            if self._thread is None and not self._start():
                return
            heapq.heappush(self._deadlines, (deadline, next(self._order), cutoff))
            if self._deadlines[0][2] is cutoff:  # sooner than what the thread waits for
                self._condition.notify()

    def _start(self) -> bool:
        thread = threading.Thread(target=self._run, name="posthog-integrations-cutoff",
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                while self._deadlines and (self._deadlines[0][2].done
                                           or self._deadlines[0][0] <= now):
                    deadline, _, cutoff = heapq.heappop(self._deadlines)
                    if deadline <= now and not cutoff.expire():
                        heapq.heappush(self._deadlines, (now + _POLL_WHILE_CONNECTING,
                                                         next(self._order), cutoff))
                        break
                wait = self._deadlines[0][0] - now if self._deadlines else None
                self._condition.wait(wait)


_watchdog = _Watchdog()


def _new_watchdog_after_fork() -> None:
    """The parent's watchdog thread does not exist in a forked child, and its lock may be held."""
    global _watchdog
    _watchdog = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_watchdog_after_fork)


class CutoffAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections report their socket to the active cutoff."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _report_connections(self.poolmanager)

    def proxy_manager_for(self, proxy: Any, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _report_connections(manager)
        return manager


class _Reporting:
    """Marks the pool and connection classes made here."""


_reporting_classes: dict[type[Any], type[Any]] = {}


def _report(sock: Any) -> None:
    cutoff: Cutoff | None = getattr(_active, "cutoff", None)
    if cutoff is not None and sock is not None:
        cutoff.use(sock)


def _report_connections(manager: Any) -> None:
    manager.pool_classes_by_scheme = {
        scheme: _reporting_pool(pool_class)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }


def _reporting_pool(pool_class: type[Any]) -> type[Any]:
    """A subclass of ``pool_class`` whose connections report their socket when in use."""
    if issubclass(pool_class, _Reporting):
        return pool_class
    if pool_class not in _reporting_classes:
        def _get_conn(self: Any, timeout: float | None = None) -> Any:
            connection = pool_class._get_conn(self, timeout)
            _report(getattr(connection, "sock", None))  # None until a new one connects
            return connection

        _reporting_classes[pool_class] = type(
            f"Reporting{pool_class.__name__}", (pool_class, _Reporting),
            {"_get_conn": _get_conn, "ConnectionCls": _reporting_connection(pool_class)},
        )
    return _reporting_classes[pool_class]


def _reporting_connection(pool_class: type[Any]) -> type[Any]:
    connection_class: type[Any] = pool_class.ConnectionCls

    def connect(self: Any) -> None:
        connection_class.connect(self)
        _report(self.sock)

    return type(f"Reporting{connection_class.__name__}", (connection_class, _Reporting),
                {"connect": connect})
