"""The background sender: batches the queue and posts it, with retries, flush and fork safety.

Producers never take a lock: they append to the queue and set an Event only when the sender is
asleep on an empty queue or a full batch is waiting. One daemon thread per client, started on the
first event; after ``fork()`` the child starts with an empty queue and a new thread and session.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

from .options import ClientOptions
from .queue import EventQueue
from .runtime import uwsgi_options, uwsgi_threads_enabled
from .serialization import encode_event
from .stats import Counters
from .transport import Transport, backoff_delay, is_retryable

logger = logging.getLogger("posthog_integrations")

Event = dict[str, Any]
MAX_EVENT_BYTES = 900 * 1024
MAX_BATCH_BYTES = 5 * 1024 * 1024
ATEXIT_TIMEOUT = 2.0
_live_senders: weakref.WeakSet[Sender] = weakref.WeakSet()
_atexit_registered = False
_threads_checked_in = 0  # the pid the uWSGI threads check ran in: once per process
_monotonic = time.monotonic


class Sender:
    """Owns one client's queue, sender thread and transport."""

    def __init__(self, options: ClientOptions, counters: Counters) -> None:
        self._options = options
        self._counters = counters
        self._flush_at = options.flush_at
        self._closed = False
        self._reset_runtime()
        _live_senders.add(self)

    def _reset_runtime(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._queue = EventQueue(self._options.max_queue_size)
        self._wake = threading.Event()
        self._idle = threading.Condition()  # notified whenever a batch is finished
        self._start_lock = threading.Lock()
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._in_flight = 0  # events taken from the queue and not yet finished
        self._flush_requests = 0
        self._asleep_on_empty = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, event: Event) -> bool:
        """Queue ``event`` for the sender; False when the queue is full. Never blocks."""
        queue = self._queue
        if not queue.put(event):
            return False
        if self._thread is None:
            self._start()
        if (self._asleep_on_empty or len(queue) >= self._flush_at) and not self._wake.is_set():
            self._wake.set()
        return True

    def send_now(self, events: list[Event]) -> None:
        """Deliver ``events`` in the calling thread, with retries (``sync_mode``)."""
        self._counters.add("taken", len(events))
        self._deliver(events, deadline=None)

    def flush(self, timeout: float) -> bool:
        """Send everything queued; block until delivered or ``timeout``. True when drained."""
        deadline = _monotonic() + timeout
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._drain_here(deadline)
        with self._idle:
            self._flush_requests += 1
            self._wake.set()
            try:
                while len(self._queue) or self._in_flight:
                    remaining = deadline - _monotonic()
                    if remaining <= 0:
                        return False
                    self._idle.wait(remaining)
                return True
            finally:
                self._flush_requests -= 1

    def shutdown(self, timeout: float) -> bool:
        """Flush, stop the thread, and give up on what is left once ``timeout`` passes."""
        deadline = _monotonic() + timeout
        self._closed = True
        delivered = self.flush(timeout)
        thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - _monotonic()))
        if not delivered:
            self._abandon.set()
            in_flight = self._in_flight
            left = self._queue.clear()
            self._counters.add("dropped.shutdown", left)
            logger.warning("shutdown timed out after %.1fs: %d events were not sent "
                           "(%d of them in a request that had not completed)",
                           timeout, left + in_flight, in_flight)
        if self._transport is not None and (thread is None or not thread.is_alive()):
            self._transport.close()
        _live_senders.discard(self)
        return delivered

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name="posthog-integrations-sender", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: the atexit flush sends inline
                return
            self._thread = thread
        _register_atexit()
        _warn_if_threads_never_run()

    def _run(self) -> None:
        due: float | None = None
        while True:
            self._wake.clear()
            if not len(self._queue):
                due = None
                if self._closed:
                    return
                self._asleep_on_empty = True
                if not len(self._queue):  # re-check after announcing: see submit()
                    self._wake.wait()
                self._asleep_on_empty = False
                continue
            now = _monotonic()
            if due is None:
                due = now + self._options.flush_interval
            if (len(self._queue) >= self._flush_at or now >= due
                    or self._flush_requests or self._closed):
                self._send_one_batch(deadline=None)
                due = None
            else:
                self._wake.wait(due - now)

    def _drain_here(self, deadline: float) -> bool:
        while len(self._queue):
            if _monotonic() >= deadline:
                return False
            self._send_one_batch(deadline=deadline)
        return True

    def _send_one_batch(self, deadline: float | None) -> None:
        with self._idle:
            batch = self._queue.take(self._options.max_batch_size)
            self._in_flight = len(batch)
        try:
            self._counters.add("taken", len(batch))
            self._deliver(batch, deadline)
        except Exception:  # a bug here must not kill the thread and silently stop delivery
            logger.exception("unexpected error while sending a batch of %d events", len(batch))
            self._counters.add("dropped.failed", len(batch))
        finally:
            with self._idle:
                self._in_flight = 0
                self._idle.notify_all()

    def _deliver(self, batch: list[Event], deadline: float | None) -> None:
        events: list[Event] = []
        encoded: list[bytes] = []
        size = 0
        for event in batch:
            data = encode_event(event)
            if len(data) > MAX_EVENT_BYTES:
                self._counters.add("dropped.oversize")
                logger.error("dropping event %r (uuid %s): %d bytes is over the 900 KiB limit",
                             event.get("event"), event.get("uuid"), len(data))
                continue
            if encoded and size + len(data) > MAX_BATCH_BYTES:
                self._post(events, encoded, deadline)
                events, encoded, size = [], [], 0
            events.append(event)
            encoded.append(data)
            size += len(data) + 1
        if encoded:
            self._post(events, encoded, deadline)

    def _post(self, events: list[Event], encoded: list[bytes], deadline: float | None) -> None:
        options = self._options
        if self._transport is None:
            self._transport = Transport(
                options.host, options.api_key, timeout=options.timeout, gzip=options.gzip
            )
        for attempt in range(options.max_retries + 1):
            try:
                self._transport.post(encoded, historical_migration=options.historical_migration)
            except Exception as error:
                if attempt == options.max_retries or not is_retryable(error):
                    self._fail(error, events, attempt + 1)
                    return
                delay = backoff_delay(
                    attempt, options.retry_base_delay, getattr(error, "retry_after", None)
                )
                if deadline is not None and _monotonic() + delay > deadline:
                    self._fail(error, events, attempt + 1)
                    return
                self._counters.add("retried")
                logger.debug("batch of %d events failed (%s); retry %d in %.2fs",
                             len(events), error, attempt + 1, delay)
                if self._abandon.wait(delay):
                    self._fail(error, events, attempt + 1)
                    return
            else:
                self._counters.add("sent", len(events))
                logger.debug("sent a batch of %d events", len(events))
                return

    def _fail(self, error: Exception, events: list[Event], attempts: int) -> None:
        self._counters.add("failed_batches")
        self._counters.add("dropped.failed", len(events))
        logger.warning("dropping a batch of %d events after %d attempt(s): %s",
                       len(events), attempts, error)
        on_error: Callable[[Exception, list[Event]], None] | None = self._options.on_error
        if on_error is not None:
            try:
                on_error(error, events)
            except Exception:
                logger.exception("the on_error callback raised")

    def _after_fork_in_child(self) -> None:
        self._reset_runtime()
        self._counters.reset()


def _warn_if_threads_never_run() -> None:
    """uWSGI without threads never runs the sender: say so once, with the fix."""
    global _threads_checked_in
    if _threads_checked_in == os.getpid():
        return
    _threads_checked_in = os.getpid()
    options = uwsgi_options()
    if options is not None and not uwsgi_threads_enabled(options):
        logger.warning("uWSGI runs without threads, so PostHog events are never sent: set "
                       "enable-threads = true in the uWSGI configuration, or sync_mode=True")


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    """Give every live sender a share of one short budget, so exit never hangs."""
    deadline = _monotonic() + ATEXIT_TIMEOUT
    for sender in list(_live_senders):
        sender.shutdown(max(0.0, deadline - _monotonic()))


def _reset_after_fork() -> None:
    for sender in list(_live_senders):
        sender._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
