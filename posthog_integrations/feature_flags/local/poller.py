"""A client's flag definitions, kept fresh by one background thread.

The thread starts on first use (a flag read or :meth:`DefinitionsPoller.load`), never when the
client is built, and polls its :class:`DefinitionsSource` every ``poll_interval`` seconds; it is
the only caller of ``refresh()``, so polls never overlap. Each poll has a generation number:
an answer is published only when it is newer than the one published, and ``load()`` waits for
the first poll that started after it was called. The definitions are one immutable value, so
readers see the old set or the new one, never a mix.

After ``fork()`` the child keeps the parent's definitions but no thread and no source: its
first use starts its own thread, which builds its own source (and connection).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from posthog_integrations.core.options import ClientOptions

from .definitions import NO_DEFINITIONS, FlagDefinitions, parse_definitions
from .source import (
    FAILED,
    NOT_MODIFIED,
    QUOTA_LIMITED,
    UNAUTHORIZED,
    UPDATED,
    DefinitionsSource,
    Fetched,
    SourceFactory,
    source_for,
)

logger = logging.getLogger("posthog_integrations")

THREAD_NAME = "posthog-integrations-flag-definitions"
JOIN_TIMEOUT = 1.0  # how long stop() waits for a poll in flight; the thread is a daemon
_live_pollers: weakref.WeakSet[DefinitionsPoller] = weakref.WeakSet()
_monotonic = time.monotonic


class DefinitionsPoller:
    """Holds one client's current :class:`FlagDefinitions` and polls for new ones."""

    def __init__(self, options: ClientOptions, factory: SourceFactory = source_for) -> None:
        self._options = options
        self._factory = factory
        self._definitions: FlagDefinitions | None = None
        self._loaded = False
        self._closed = False
        self._polls_started = 0  # the generation of the newest poll
        self._polls_done = 0
        self._published = 0  # the generation whose answer the definitions are
        self._asked_for = 0  # a poll load() waits for
        self._next_poll = 0.0  # monotonic time the next poll is due: at once, at first
        self._logged: set[str] = set()  # kinds of trouble logged since the last good poll
        self._reset_runtime()
        _live_pollers.add(self)

    def _reset_runtime(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._source: DefinitionsSource | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "loaded" if self._loaded else "not loaded"
        return f"<DefinitionsPoller {state}, every {self._options.poll_interval:g}s>"

    def current(self) -> FlagDefinitions | None:
        """The definitions now (None before any was loaded); starts the poller if needed."""
        if self._thread is None and not self._closed:
            self._start()
        return self._definitions

    def load(self, timeout: float) -> bool:
        """Poll now and wait up to ``timeout`` seconds for the answer; whether definitions are
        loaded then."""
        if self._closed:
            return False
        deadline = _monotonic() + timeout
        with self._changed:  # before the thread starts, so that its first poll is this one
            wanted = self._polls_started + 1
            self._asked_for = max(self._asked_for, wanted)
            self._changed.notify_all()
        if not self._start():  # no thread can start (interpreter exit): poll here
            self._poll()
            return self._loaded
        with self._changed:
            while self._polls_done < wanted and not self._closed:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self._loaded

    def stop(self) -> None:
        """Stop polling and close the source. Idempotent; waits at most ``JOIN_TIMEOUT``."""
        with self._changed:
            self._closed = True
            thread, source = self._thread, self._source
            self._source = None
            self._changed.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT)
        if source is not None:
            try:
                source.close()
            except Exception:
                logger.debug("closing the flag definitions source failed", exc_info=True)
        _live_pollers.discard(self)

    def _start(self) -> bool:
        with self._changed:
            if self._thread is not None:
                return True
            if self._closed:
                return False
            thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down
                return False
            self._thread = thread
            return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and self._asked_for <= self._polls_started:
                    remaining = self._next_poll - _monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                if self._closed:
                    return
            try:
                self._poll()
            except Exception:  # a bug here must not end polling, nor make it spin
                logger.exception("polling for flag definitions failed")
                with self._changed:
                    self._polls_done = self._polls_started
                    self._next_poll = _monotonic() + self._options.poll_interval
                    self._changed.notify_all()

    def _poll(self) -> None:
        with self._changed:
            self._polls_started += 1
            generation = self._polls_started
            source = self._source
        try:
            if source is None:
                source = self._factory(self._options)
                with self._changed:
                    closed = self._closed
                    if not closed:
                        self._source = source
                if closed:  # stop() came first: it could not close this one
                    source.close()
                    return
            fetched = source.refresh()
        except Exception as error:  # a source must not raise; if one does, the poller lives on
            logger.debug("the flag definitions source raised", exc_info=True)
            fetched = Fetched(FAILED, detail=f"unexpected error: {type(error).__name__}")
        with self._changed:
            if generation > self._published and not self._closed:
                self._published = generation
                message = self._apply(fetched)
            else:
                message = None
            self._polls_done = max(self._polls_done, generation)
            self._next_poll = _monotonic() + self._options.poll_interval
            self._changed.notify_all()
        if message is not None:
            level, text, args = message
            logger.log(level, text, *(self._redacted(arg) if isinstance(arg, str) else arg
                                      for arg in args))

    def _apply(self, fetched: Fetched) -> tuple[int, str, tuple[Any, ...]] | None:
        """Publish what ``fetched`` says (under the lock); the log line to write, if any."""
        outcome = fetched.outcome
        if outcome == UPDATED:
            try:
                definitions = parse_definitions(fetched.data)
            except ValueError as error:
                fetched = Fetched(FAILED, detail=f"unreadable answer: {error}")
            else:
                self._definitions, self._loaded = definitions, True
                return self._recovered()
        # Unchanged since the definitions last loaded (none loaded, or cleared: no success).
        if outcome == NOT_MODIFIED and self._definitions is not None and \
                self._definitions is not NO_DEFINITIONS:
            self._loaded = True
            return self._recovered()
        if outcome in (UNAUTHORIZED, QUOTA_LIMITED):
            self._definitions, self._loaded = NO_DEFINITIONS, False
            if outcome == UNAUTHORIZED:
                return self._once(UNAUTHORIZED, logging.ERROR, (
                    "PostHog rejected the secret key (%s): the flag definitions are cleared "
                    "until a poll succeeds; set secret_key to a personal API key with feature "
                    "flag read access, or a project secret key"), fetched.detail)
            return self._once(QUOTA_LIMITED, logging.WARNING, (
                "PostHog's flag definitions are over their quota (%s): they are cleared "
                "until a poll succeeds"), fetched.detail)
        kept = "keeping the last good definitions" if self._loaded else \
            "no definitions are loaded"
        kind = fetched.detail.split(":", 1)[0] if fetched.detail else outcome
        return self._once(f"{FAILED}:{kind}", logging.WARNING,
                          "flag definitions could not be loaded (%s); %s, and will poll again "
                          "in %gs", fetched.detail or outcome, kept,
                          self._options.poll_interval)

    def _once(self, kind: str, level: int, text: str,
              *args: Any) -> tuple[int, str, tuple[Any, ...]]:
        """The log line at ``level`` the first time ``kind`` happens since the last good poll;
        at debug level after that."""
        first = kind not in self._logged
        self._logged.add(kind)
        return (level if first else logging.DEBUG), text, args

    def _recovered(self) -> tuple[int, str, tuple[Any, ...]] | None:
        if not self._logged:
            return None
        self._logged.clear()
        return logging.INFO, "flag definitions loaded again", ()

    def _redacted(self, text: str) -> str:
        for key, label in ((self._options.secret_key, "<secret key>"),
                           (self._options.api_key, "<api key>")):
            if key:
                text = text.replace(key, label)
        return text

    def _after_fork_in_child(self) -> None:
        self._reset_runtime()


def _reset_after_fork() -> None:
    for poller in list(_live_pollers):
        poller._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
