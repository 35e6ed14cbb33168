"""``$feature_flag_called`` once per (distinct id, flag, value, groups) across every process.

A set-if-absent with a time to live, in the Redis of ``flag_definitions_cache``: the first
process to record a call sends the event; the others, until the key expires, do not. Keys are a
hash of what they record (never a distinct id in the clear), so Redis holds at most one short
key per distinct call and TTL. Each check is a network round trip (bounded by a short timeout):
make it where sending is decided off the request path, after the process's own tracker said
"first time". While Redis does not answer, every call counts as the first (the process's own
tracker still deduplicates), logged once, and Redis is not asked again for ``retry_after``
seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from .shared_store import REDIS_TIMEOUT, connect, redis_location

logger = logging.getLogger("posthog_integrations")

DEFAULT_TTL = 24 * 3600.0
RETRY_AFTER = 5.0

_live: weakref.WeakSet[SharedCalledDedup] = weakref.WeakSet()


class SharedCalledDedup:
    """``first_time(...)`` is True for exactly one process per distinct call and ``ttl``."""

    def __init__(self, url: str, *, namespace: str, ttl: float = DEFAULT_TTL,
                 redis_timeout: float = REDIS_TIMEOUT, retry_after: float = RETRY_AFTER) -> None:
        import redis

        self._url = url
        self._where = redis_location(url)
        self._prefix = f"{namespace}:called:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._timeout = redis_timeout
        self._retry_after = retry_after
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._degraded = False
        self._skip_until = 0.0
        self._state_lock = threading.Lock()
        self._client = connect(url, redis_timeout)
        _live.add(self)

    def after_fork_in_child(self) -> None:
        """A forked child makes its own connection."""
        self._state_lock = threading.Lock()
        self._client = connect(self._url, self._timeout)

    def __repr__(self) -> str:
        return f"<SharedCalledDedup redis={self._where}>"

    def key_for(self, distinct_id: str, key: str, value: Any,
                groups: Mapping[str, Any]) -> str:
        """The Redis key of one call: the same whatever the order of ``groups``."""
        record = [distinct_id, key, value, sorted((str(k), str(v)) for k, v in groups.items())]
        digest = hashlib.sha256(json.dumps(record, default=str).encode()).hexdigest()[:40]
        return self._prefix + digest

    def first_time(self, distinct_id: str, key: str, value: Any,
                   groups: Mapping[str, Any]) -> bool:
        """Record this call; False when another process (or this one) recorded it already."""
        if time.monotonic() < self._skip_until:
            return True
        try:
            recorded = self._client.set(self.key_for(distinct_id, key, value, groups), b"1",
                                        nx=True, px=self._ttl_ms)
        except self._errors as error:
            with self._state_lock:
                self._skip_until = time.monotonic() + self._retry_after
                if not self._degraded:
                    self._degraded = True
                    logger.warning("$feature_flag_called dedup: Redis at %s does not answer "
                                   "(%s); each process deduplicates on its own until it does",
                                   self._where, type(error).__name__)
            return True
        if self._degraded:
            with self._state_lock:
                recovered, self._degraded = self._degraded, False
            if recovered:
                logger.warning("$feature_flag_called dedup: Redis at %s answers again",
                               self._where)
        return bool(recorded)

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(*self._errors):
            self._client.close()


def _after_fork_in_child() -> None:
    for dedup in list(_live):
        dedup.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
