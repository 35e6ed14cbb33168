"""Flag definitions shared through Redis: one poll per interval for every process of a project.

Option ``flag_definitions_cache="redis://host:port/db"``. At each refresh a process tries to take
(or renew) a lock that lives about one poll interval. The holder polls PostHog with the shared
ETag and stores the definitions, their ETag and a new version in Redis; a 401 or 402 is stored
as well, so every process clears its definitions. The other processes only read the shared
copy: a refresh returns ``updated`` when its version changed since this process last saw it.
If the holder dies its lock expires within one interval and the next process to refresh takes
over. While Redis does not answer, each process polls PostHog itself (logged once per outage)
and goes back to the shared copy when Redis answers again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
import weakref
from typing import Any, Callable, Optional

from .shared_store import (
    OK,
    REDIS_TIMEOUT,
    TOO_LARGE,
    SharedState,
    SharedStore,
    Stamp,
    connect,
    redis_location,
)
from .source import FAILED, NOT_MODIFIED, QUOTA_LIMITED, UNAUTHORIZED, UPDATED, Fetched

logger = logging.getLogger("posthog_integrations")

Fetch = Callable[[Optional[str]], Fetched]
"""One HTTP poll of the definitions, given the ETag to send (None for none)."""

DEFAULT_KEY_PREFIX = "posthog-integrations:flags"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
FIRST_LOAD_WAIT = 2.0
"""How long a process with no definitions yet waits for the holder's first poll."""
STATE_TTL = 24 * 3600.0
"""The shared copy outlives its last holder by this long (renewed at every poll)."""
VERDICTS = (UNAUTHORIZED, QUOTA_LIMITED)
SCHEMES = ("redis", "rediss", "unix")

_live_sources: weakref.WeakSet[SharedSource] = weakref.WeakSet()


def namespace_for(project_key: str, host: str = "", key_prefix: str = DEFAULT_KEY_PREFIX) -> str:
    """The Redis key prefix of one project: a hash, never the key itself."""
    digest = hashlib.sha256(f"{host}\n{project_key}".encode()).hexdigest()[:32]
    return f"{key_prefix}:{digest}"


def check_cache_url(url: object) -> None:
    """``ValueError`` unless ``url`` is a Redis URL this process can use (at configuration)."""
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in SCHEMES:
        raise ValueError("flag_definitions_cache must be a redis://, rediss:// or unix:// URL")
    try:
        import redis  # noqa: F401  (optional dependency: the `redis` extra)
    except ImportError:
        raise ValueError("flag_definitions_cache needs the redis package: "
                         "pip install 'posthog-integrations[redis]'") from None


def make_shared_source(url: str, fetch: Fetch, *, project_key: str, poll_interval: float,
                       host: str = "", key_prefix: str = DEFAULT_KEY_PREFIX,
                       max_bytes: int = DEFAULT_MAX_BYTES,
                       on_close: Callable[[], None] | None = None) -> SharedSource:
    """A :class:`SharedSource` for ``url``; ``ValueError`` for a URL or setup it cannot use.

    ``on_close`` runs when the source closes (to close what ``fetch`` sends through).
    """
    check_cache_url(url)
    return SharedSource(url, fetch, namespace=namespace_for(project_key, host, key_prefix),
                        poll_interval=poll_interval, max_bytes=max_bytes, on_close=on_close)


class SharedSource:
    """A definitions source (``refresh()``/``close()``) shared through Redis; see the module."""

    def __init__(self, url: str, fetch: Fetch, *, namespace: str, poll_interval: float,
                 max_bytes: int = DEFAULT_MAX_BYTES, redis_timeout: float = REDIS_TIMEOUT,
                 first_load_wait: float = FIRST_LOAD_WAIT,
                 on_close: Callable[[], None] | None = None) -> None:
        import redis

        self._url = url
        self._where = redis_location(url)
        self._fetch = fetch
        self._on_close = on_close
        self._namespace = namespace
        self._interval = poll_interval
        self._max_bytes = max_bytes
        self._redis_timeout = redis_timeout
        self._first_wait = min(first_load_wait, poll_interval)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._degraded = False
        self._closed = False
        self._closing = threading.Lock()
        self._start()
        _live_sources.add(self)

    def _start(self) -> None:
        """Everything one process owns: its lock, connection, token, and what it has seen."""
        self._lock = threading.Lock()
        self._client = connect(self._url, self._redis_timeout)
        self._store = SharedStore(self._client, self._namespace,
                                  state_ttl=max(STATE_TTL, 10 * self._interval))
        self._token = secrets.token_hex(16)
        self._seen: Stamp | None = None
        self._own_etag: str | None = None

    def after_fork_in_child(self) -> None:
        """A forked child is a new process: its own connection and token, nothing seen yet."""
        self._start()

    def __repr__(self) -> str:
        return f"<SharedSource redis={self._where} namespace={self._namespace}>"

    def refresh(self) -> Fetched:
        """One poll: through the shared copy, or straight to PostHog while Redis is away."""
        with self._lock:
            if self._closed:
                return Fetched(FAILED, None, None, "closed: the definitions source is closed")
            try:
                return self._shared_refresh()
            except self._errors as error:
                if self.closed:  # close() cut this poll short
                    return Fetched(FAILED, None, None, "closed: the definitions source is closed")
                self._note_redis_down(error)
                return self._direct()
            except Exception:
                logger.exception("flag definitions cache: the shared refresh failed")
                return Fetched(FAILED, None, None, "unexpected error: in the shared refresh")
            finally:
                if self.closed:  # closed during this poll, which may have reconnected
                    with contextlib.suppress(*self._errors):
                        self._client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the lock if this process holds it, and close the connection.

        It does not wait for a poll in flight (that one's answer is not stored).
        """
        with self._closing:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(*self._errors):
            self._store.release(self._token)
        with contextlib.suppress(*self._errors):
            self._client.close()
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                logger.debug("closing the definitions request's transport failed", exc_info=True)

    def _note_redis_down(self, error: BaseException) -> None:
        if not self._degraded and not self._closed:
            self._degraded = True
            logger.warning("flag definitions cache: Redis at %s does not answer (%s); this "
                           "process polls PostHog itself until it does", self._where,
                           type(error).__name__)

    def _note_redis_up(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.warning("flag definitions cache: Redis at %s answers again; this process "
                           "reads the shared definitions", self._where)

    def _shared_refresh(self) -> Fetched:
        if self._store.acquire(self._token, self._interval):
            result = self._poll_as_holder()
        else:
            state = self._store.read()
            if state is not None:
                result = self._follow(state)
            elif self._seen is None and self._own_etag is None:
                result = self._await_first_state()
            else:
                result = Fetched(NOT_MODIFIED, None, self._own_etag, "no shared copy yet")
        self._note_redis_up()
        return result

    def _await_first_state(self) -> Fetched:
        """Nothing loaded yet and another process is polling: wait briefly for its result."""
        deadline = time.monotonic() + self._first_wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self._store.acquire(self._token, self._interval):
                return self._poll_as_holder()
            state = self._store.read()
            if state is not None:
                return self._follow(state)
        return self._direct()

    def _follow(self, state: SharedState) -> Fetched:
        """A reader's refresh: the shared copy when it changed since this process saw it."""
        if state.outcome == TOO_LARGE:
            self._seen = state.stamp
            return self._direct()
        if state.stamp == self._seen:
            if state.outcome in VERDICTS:  # still in force: say so, as a poll would
                return _verdict(state.outcome)
            return Fetched(NOT_MODIFIED, None, state.etag, "shared copy unchanged")
        full = self._store.read(with_data=True)
        if full is None:
            return Fetched(NOT_MODIFIED, None, self._own_etag, "no shared copy yet")
        if full.outcome == TOO_LARGE:
            return self._follow(full)
        return self._adopt(full)

    def _adopt(self, state: SharedState) -> Fetched:
        """Take ``state`` (read with its data) as this process's definitions."""
        if state.outcome in VERDICTS:
            self._seen, self._own_etag = state.stamp, None
            return _verdict(state.outcome)
        data: Any = None
        if state.outcome == OK and state.data is not None and len(state.data) <= self._max_bytes:
            try:
                data = json.loads(state.data)
            except ValueError:
                data = None
        if not isinstance(data, dict):
            return Fetched(FAILED, None, None, "unreadable answer: the shared copy in Redis")
        self._seen, self._own_etag = state.stamp, state.etag
        return Fetched(UPDATED, data, state.etag, "from the shared copy")

    def _poll_as_holder(self) -> Fetched:
        """This process holds the lock: poll PostHog with the shared ETag, store what changed."""
        state = self._store.read()
        adopted: Fetched | None = None
        if state is not None and state.outcome == OK and state.stamp != self._seen:
            full = self._store.read(with_data=True)
            if full is not None:
                state = full
                adopted = self._adopt(full) if full.outcome == OK else None
        if state is None or state.outcome in VERDICTS:
            send = None
        elif state.outcome == TOO_LARGE:
            send = self._own_etag
        else:
            send = state.etag if adopted is None or adopted.outcome == UPDATED else None
        result = self._call_fetch(send)
        try:
            self._publish(state, result)
        except self._errors as error:
            self._note_redis_down(error)
        if result.outcome in (NOT_MODIFIED, FAILED) and adopted is not None \
                and adopted.outcome == UPDATED:
            return adopted
        return result

    def _publish(self, state: SharedState | None, result: Fetched) -> None:
        """Store what the holder's poll learnt, for every other process."""
        if result.outcome == UPDATED:
            encoded = json.dumps(result.data, separators=(",", ":")).encode()
            if len(encoded) <= self._max_bytes:
                self._remember(self._store.write(self._token, OK, result.etag, encoded))
            elif state is None or state.outcome != TOO_LARGE:
                logger.warning("flag definitions cache: the definitions are %d bytes, over the "
                               "shared copy's bound of %d; each process polls PostHog itself",
                               len(encoded), self._max_bytes)
                self._remember(self._store.write(self._token, TOO_LARGE, None, b""))
        elif result.outcome in VERDICTS:
            if state is None or state.outcome != result.outcome:
                self._remember(self._store.write(self._token, result.outcome, None, b""))
        elif (result.outcome == NOT_MODIFIED and state is not None and state.outcome == OK
              and result.etag and result.etag != state.etag):
            self._store.set_etag(self._token, state.stamp, result.etag)

    def _remember(self, stamp: Stamp | None) -> None:
        if stamp is not None:
            self._seen = stamp

    def _direct(self) -> Fetched:
        """Poll PostHog for this process alone, with its own ETag."""
        return self._call_fetch(self._own_etag)

    def _call_fetch(self, etag: str | None) -> Fetched:
        try:
            result = self._fetch(etag)
        except Exception:
            logger.exception("flag definitions cache: the definitions request failed")
            return Fetched(FAILED, None, None, "unexpected error: in the definitions request")
        if result.outcome == UPDATED:
            self._own_etag = result.etag
        elif result.outcome == NOT_MODIFIED:
            self._own_etag = result.etag or etag
        elif result.outcome in VERDICTS:
            self._own_etag = None
        return result


def _verdict(outcome: str) -> Fetched:
    status = 401 if outcome == UNAUTHORIZED else 402
    return Fetched(outcome, None, None, f"HTTP {status}: as answered to the process polling "
                                        "for all")


def _after_fork_in_child() -> None:
    for source in list(_live_sources):
        source.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
