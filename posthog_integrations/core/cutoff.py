"""A hard deadline for one HTTP request, from connecting to the last byte of the answer.

``requests`` applies its timeout to each socket operation, so a server that sends a byte now and
then never trips it. While a :class:`Cutoff` is active in a thread, the connections of
:class:`CutoffAdapter` tell it which socket that thread's request uses (when a pooled one is
reused, or a new one has connected); at the deadline a timer thread shuts that socket down, and
the read blocked on it fails at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter

_active = threading.local()
_POLL_WHILE_CONNECTING = 0.02  # the socket exists only once connected: look again this often


class Cutoff:
    """Cuts the connection of the request made in this thread once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._socket: Any = None
        self._timer: threading.Thread | None = threading.Thread(
            target=self._watch, name="posthog-integrations-cutoff", daemon=True
        )

    def __enter__(self) -> Cutoff:
        _active.cutoff = self
        try:
            self._timer.start()  # type: ignore[union-attr]
        except RuntimeError:  # interpreter shutting down: only the socket timeouts apply
            self._timer = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _active.cutoff = None
        with self._lock:
            self._socket = None
            self._done.set()

    def use(self, sock: Any) -> None:
        """The request now runs over ``sock``."""
        with self._lock:
            self._socket = sock

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                if self._socket is not None:
                    self.fired = True
                    with contextlib.suppress(OSError):
                        self._socket.shutdown(socket.SHUT_RDWR)
                    return
            if self._done.wait(_POLL_WHILE_CONNECTING):
                return


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
