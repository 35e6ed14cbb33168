"""The background sender: batches the queue and posts it, with retries, flush and fork safety.

Producers never take a lock: they append to the queue and set an Event only when the sender is
asleep on an empty queue or a full batch is waiting. One daemon thread per client, started on the
first event; after ``fork()`` the child starts with an empty queue and a new thread and session.

A send in the calling thread (``sync_mode``, ``check``) ends within ``SEND_BOUND_FACTOR`` times
``timeout``, every attempt and backoff included; each attempt is cut off at ``timeout``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

from .capture_v1 import V1_PATH, CaptureRejected, RetriesExhausted, V1Batch, is_retryable_status
from .options import ClientOptions
from .queue import EventQueue
from .runtime import uwsgi_options, uwsgi_threads_enabled
from .serialization import encode_event
from .stats import Counters
from .transport import APIError, Transport, backoff_delay, is_retryable, parse_retry_after

logger = logging.getLogger("posthog_integrations")

Event = dict[str, Any]
Count = Callable[[str, int], bool]  # counts an outcome; False when it was already accounted for
SEND_BOUND_FACTOR = 2.0
MAX_EVENT_BYTES = 900 * 1024
MAX_BATCH_BYTES = 5 * 1024 * 1024
ATEXIT_TIMEOUT = 2.0
_live_senders: weakref.WeakSet[Sender] = weakref.WeakSet()
_atexit_registered = False
_exit_deadline: float | None = None  # set by the exit flush: late events share what is left
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
        # Under self._idle: events ever taken from the queue, and how many of those are finished
        # (sent or dropped), so that flush() waits for what was queued before it and no more.
        self._taken = 0
        self._finished = 0
        self._in_flight = 0  # events of the batch being sent whose outcome is not counted yet
        self._in_flight_claimed = False  # shutdown() counted them: the sender must not again
        self._flush_requests = 0
        self._asleep_on_empty = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, event: Event) -> bool:
        """Queue ``event`` for the sender; False when the queue is full.

        Never blocks, except after the exit flush: nothing would send a queued event then, so
        it is sent here, within what is left of the exit budget (or dropped and counted).
        """
        if self._closed:
            self._send_late([event])
            return True
        queue = self._queue
        if not queue.put(event):
            return False
        if self._thread is None and not self._start():
            with self._idle:
                stranded = queue.take(len(queue))
            self._send_late(stranded)
            return True
        if (self._asleep_on_empty or len(queue) >= self._flush_at) and not self._wake.is_set():
            self._wake.set()
        return True

    def send_now(self, events: list[Event]) -> None:
        """Deliver ``events`` in the calling thread, with retries (``sync_mode``).

        Ends within ``SEND_BOUND_FACTOR * timeout``, every attempt and backoff included.
        """
        self._counters.add("taken", len(events))
        bound = min(SEND_BOUND_FACTOR * self._options.timeout, threading.TIMEOUT_MAX)
        self._deliver(events, _monotonic() + bound, self._count)

    def flush(self, timeout: float) -> bool:
        """Send what was queued before this call; block until it is sent or dropped, or
        ``timeout`` passes. True when it all finished in time (events captured meanwhile by
        other threads are not waited for)."""
        deadline = _monotonic() + timeout
        with self._idle:
            target = self._taken + len(self._queue)
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._drain_here(deadline, target)
        with self._idle:
            self._flush_requests += 1
            self._wake.set()
            try:
                while self._finished < target:
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
            with self._idle:
                in_flight = self._in_flight
                self._in_flight = 0
                self._in_flight_claimed = True
                left = self._queue.clear()
                self._taken += left
            self._counters.add("taken", left)
            self._counters.add("dropped.shutdown", left + in_flight)
            logger.warning("shutdown timed out after %.1fs: %d events were not sent "
                           "(%d of them in a request that had not completed)",
                           timeout, left + in_flight, in_flight)
        transport = self._transport
        if transport is not None and (thread is None or not thread.is_alive()):
            self._transport = None  # an event captured after the exit flush opens a new one
            transport.close()
        _live_senders.discard(self)
        return delivered

    def _start(self) -> bool:
        """Start the sender thread (once); False when no thread can start."""
        with self._start_lock:
            if self._thread is not None:
                return True
            thread = threading.Thread(
                target=self._run, name="posthog-integrations-sender", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: the caller sends inline
                return False
            self._thread = thread
        _register_atexit()
        _warn_if_threads_never_run()
        return True

    def _send_late(self, events: list[Event]) -> None:
        """Send events captured after the exit flush in this thread, within what is left of
        the exit budget; once it is spent, drop them and count them."""
        if not events:
            return
        self._counters.add("taken", len(events))
        deadline = _late_deadline()
        if _monotonic() < deadline:
            logger.debug("sending %d event(s) captured after the exit flush", len(events))
            self._deliver(events, deadline, self._count)
            return
        self._counters.add("dropped.shutdown", len(events))
        logger.warning("dropping event %r (uuid %s) captured after the exit flush: the %.0fs "
                       "exit budget is spent", events[0].get("event"), events[0].get("uuid"),
                       ATEXIT_TIMEOUT)

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

    def _drain_here(self, deadline: float, target: int) -> bool:
        while self._finished < target and len(self._queue):
            if _monotonic() >= deadline:
                return False
            self._send_one_batch(deadline=deadline)
        return self._finished >= target

    def _send_one_batch(self, deadline: float | None) -> None:
        with self._idle:
            batch = self._queue.take(self._options.max_batch_size)
            self._taken += len(batch)
            self._in_flight = len(batch)
            self._in_flight_claimed = False
        try:
            self._counters.add("taken", len(batch))
            self._deliver(batch, deadline, self._count_in_flight)
        except Exception:  # a bug here must not kill the thread and silently stop delivery
            logger.exception("unexpected error while sending a batch of %d events", len(batch))
            with self._idle:
                unsettled = 0 if self._in_flight_claimed else self._in_flight
            self._counters.add("dropped.failed", unsettled)
        finally:
            with self._idle:
                self._in_flight = 0
                self._finished += len(batch)
                self._idle.notify_all()

    def _count(self, name: str, amount: int) -> bool:
        self._counters.add(name, amount)
        return True

    def _count_in_flight(self, name: str, amount: int) -> bool:
        """Count an outcome of the queued batch being sent, unless shutdown() already did."""
        with self._idle:
            if self._in_flight_claimed:
                return False
            self._in_flight -= amount
        self._counters.add(name, amount)
        return True

    def _deliver(self, batch: list[Event], deadline: float | None, count: Count) -> None:
        events: list[Event] = []
        encoded: list[bytes] = []
        size = 0
        for event in batch:
            data = encode_event(event)
            if len(data) > MAX_EVENT_BYTES:
                count("dropped.oversize", 1)
                logger.error("dropping event %r (uuid %s): %d bytes is over the 900 KiB limit",
                             event.get("event"), event.get("uuid"), len(data))
                continue
            if encoded and size + len(data) > MAX_BATCH_BYTES:
                self._post(events, encoded, deadline, count)
                events, encoded, size = [], [], 0
            events.append(event)
            encoded.append(data)
            size += len(data) + 1
        if encoded:
            self._post(events, encoded, deadline, count)

    def _post(self, events: list[Event], encoded: list[bytes], deadline: float | None,
              count: Count) -> None:
        options = self._options
        transport = self._transport
        if transport is None:
            transport = self._transport = Transport(
                options.host, options.api_key, timeout=options.timeout, gzip=options.gzip
            )
        if options.capture_mode == "v1":
            self._post_v1(transport, events, deadline, count)
            return
        for attempt in range(options.max_retries + 1):
            try:
                transport.post(encoded, historical_migration=options.historical_migration,
                               deadline=deadline)
            except Exception as error:
                if attempt == options.max_retries or not is_retryable(error):
                    self._fail(error, events, attempt + 1, count)
                    return
                delay = backoff_delay(
                    attempt, options.retry_base_delay, getattr(error, "retry_after", None)
                )
                if deadline is not None and _monotonic() + delay >= deadline:
                    self._fail(error, events, attempt + 1, count)
                    return
                self._counters.add("retried")
                logger.debug("batch of %d events failed (%s); retry %d in %.2fs",
                             len(events), error, attempt + 1, delay)
                if self._abandon.wait(delay):
                    self._fail(error, events, attempt + 1, count)
                    return
            else:
                count("sent", len(events))
                logger.debug("sent a batch of %d events", len(events))
                return

    def _post_v1(self, transport: Transport, events: list[Event], deadline: float | None,
                 count: Count) -> None:
        """Deliver one batch to the v1 endpoint: events it answers ``retry`` for, or all of
        them after a retryable failure, are resent (same bytes, same request id)."""
        options = self._options
        batch = V1Batch(events, api_key=options.api_key, compression=options.v1_compression,
                        historical_migration=options.historical_migration)
        if batch.duplicates:
            count("dropped.invalid", len(batch.duplicates))
            logger.warning("dropping %d event(s) whose uuid is already in the batch (the v1 "
                           "endpoint refuses a batch with a repeated uuid)", len(batch.duplicates))
        for attempt in range(options.max_retries + 1):
            error: Exception
            try:
                body, headers = batch.request()
                answer = transport.exchange("POST", V1_PATH, body=body, headers=headers,
                                            deadline=deadline,
                                            max_answer_bytes=batch.answer_bound())
                if not 200 <= answer.status < 300:
                    raise transport.failure(answer)
            except Exception as failure:
                error = failure
                retry_after = getattr(error, "retry_after", None)
                retryable = (is_retryable_status(error.status) if isinstance(error, APIError)
                             else is_retryable(error))
                if not retryable:
                    self._fail(error, batch.pending_events(), attempt + 1, count)
                    return
            else:
                settled = batch.settle(answer)
                if settled.done:
                    count("sent", len(settled.done))
                if settled.dropped:
                    self._reject(settled.dropped, count)
                if not settled.retry:
                    logger.debug("sent a batch of %d events (v1)", len(settled.done))
                    return
                error = RetriesExhausted(f"the capture endpoint asked to retry "
                                         f"{len(settled.retry)} event(s)")
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            delay = backoff_delay(attempt, options.retry_base_delay, retry_after)
            if attempt == options.max_retries or (
                    deadline is not None and _monotonic() + delay >= deadline):
                self._fail(error, batch.pending_events(), attempt + 1, count)
                return
            self._counters.add("retried")
            logger.debug("%d event(s) not stored (%s); retry %d in %.2fs",
                         len(batch.pending), error, attempt + 1, delay)
            if self._abandon.wait(delay):
                self._fail(error, batch.pending_events(), attempt + 1, count)
                return

    def _reject(self, dropped: list[tuple[Event, str]], count: Count) -> None:
        """Count and report events the v1 endpoint answered ``drop`` for."""
        if count("dropped.rejected", len(dropped)):
            for _, details in dropped:
                self._counters.add_rejected(details, 1)
        error = CaptureRejected([(str(event.get("uuid")), details) for event, details in dropped])
        logger.warning("%s", error)
        on_error: Callable[[Exception, list[Event]], None] | None = self._options.on_error
        if on_error is not None:
            try:
                on_error(error, [event for event, _ in dropped])
            except Exception:
                logger.exception("the on_error callback raised")

    def _fail(self, error: Exception, events: list[Event], attempts: int, count: Count) -> None:
        if count("dropped.failed", len(events)):
            self._counters.add("failed_batches")
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
    global _exit_deadline
    deadline = _exit_deadline = _monotonic() + ATEXIT_TIMEOUT
    for sender in list(_live_senders):
        sender.shutdown(max(0.0, deadline - _monotonic()))


def _late_deadline() -> float:
    """When sending late events stops: the end of the exit budget, which the first late event
    starts when no exit flush did (a thread could not start at interpreter shutdown)."""
    global _exit_deadline
    if _exit_deadline is None:
        _exit_deadline = _monotonic() + ATEXIT_TIMEOUT
    return _exit_deadline


def _reset_after_fork() -> None:
    for sender in list(_live_senders):
        sender._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
