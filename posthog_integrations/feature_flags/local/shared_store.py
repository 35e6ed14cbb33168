"""The Redis side of the shared flag definitions: one lock and one state hash per project.

The lock is a token set with ``SET NX PX`` semantics; only the process whose token it holds may
renew it, release it, or write the state (each check-and-act is one Lua script, so a holder
whose lock lapsed while it waited on PostHog can never overwrite what the next holder wrote).

The state hash holds ``epoch`` (random, set when the hash is created), ``version`` (incremented
on every write), ``outcome`` (``ok``, ``unauthorized``, ``quota_limited`` or ``too_large``),
``etag`` and ``data`` (the definitions JSON, UTF-8). Readers compare ``(epoch, version)``: the
epoch tells a state rebuilt after a Redis restart from the one they saw before it.
"""

from __future__ import annotations

import dataclasses
import secrets
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

OK = "ok"
TOO_LARGE = "too_large"
"""The holder fetched definitions larger than the bound: every process polls on its own."""

Stamp = tuple[str, int]
REDIS_TIMEOUT = 0.5
"""Seconds a Redis connect or reply may take before a refresh polls PostHog directly."""

# KEYS: lock, state. ARGV: token, lock ttl ms, state ttl ms. 1 when the caller holds the lock.
_ACQUIRE = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
elseif holder then
    return 0
else
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('pexpire', KEYS[2], ARGV[3])
return 1
"""

# KEYS: lock. ARGV: token.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# KEYS: lock, state. ARGV: token, outcome, etag, data, new epoch, state ttl ms.
# {epoch, version} after the write, or nil when the caller does not hold the lock.
_WRITE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return false
end
redis.call('hsetnx', KEYS[2], 'epoch', ARGV[5])
local version = redis.call('hincrby', KEYS[2], 'version', 1)
redis.call('hset', KEYS[2], 'outcome', ARGV[2], 'etag', ARGV[3], 'data', ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[6])
return {redis.call('hget', KEYS[2], 'epoch'), version}
"""

# KEYS: lock, state. ARGV: token, epoch, version, etag. A 304 that brought a different ETag.
_SET_ETAG = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
local seen = redis.call('hmget', KEYS[2], 'epoch', 'version')
if seen[1] ~= ARGV[2] or seen[2] ~= ARGV[3] then
    return 0
end
redis.call('hset', KEYS[2], 'etag', ARGV[4])
return 1
"""


def connect(url: str, timeout: float = REDIS_TIMEOUT) -> redis.Redis:
    """A Redis client that gives up quickly: short timeouts, no retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0))


def redis_location(url: str) -> str:
    """The Redis server named for logs: host, port and database, never a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'localhost'}:{port or 6379}{parts.path or '/0'}"


@dataclasses.dataclass(frozen=True)
class SharedState:
    """One read of the state hash; ``data`` only when it was asked for."""

    epoch: str
    version: int
    outcome: str
    etag: str | None
    data: bytes | None = None

    @property
    def stamp(self) -> Stamp:
        return (self.epoch, self.version)


class SharedStore:
    """The lock and state keys of one namespace, on one Redis client."""

    def __init__(self, client: redis.Redis, namespace: str, *, state_ttl: float) -> None:
        self._client = client
        self.lock_key = f"{namespace}:lock"
        self.state_key = f"{namespace}:state"
        self._state_ttl_ms = max(1, int(state_ttl * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._write = client.register_script(_WRITE)
        self._set_etag = client.register_script(_SET_ETAG)

    def acquire(self, token: str, ttl: float) -> bool:
        """Take the lock, or renew it when ``token`` holds it; True when it is ours."""
        held = self._acquire(keys=[self.lock_key, self.state_key],
                             args=[token, max(1, int(ttl * 1000)), self._state_ttl_ms])
        return bool(held)

    def release(self, token: str) -> None:
        """Give the lock up, only if ``token`` still holds it."""
        self._release(keys=[self.lock_key], args=[token])

    def write(self, token: str, outcome: str, etag: str | None, data: bytes) -> Stamp | None:
        """Store a new state and return its stamp; None when ``token`` no longer holds the lock."""
        written = self._write(keys=[self.lock_key, self.state_key],
                              args=[token, outcome, etag or "", data, secrets.token_hex(8),
                                    self._state_ttl_ms])
        if not written:
            return None
        epoch, version = written
        return (_text(epoch), int(version))

    def set_etag(self, token: str, stamp: Stamp, etag: str) -> None:
        """Record a new ETag for the same definitions, if the state is still ``stamp``."""
        self._set_etag(keys=[self.lock_key, self.state_key],
                       args=[token, stamp[0], stamp[1], etag])

    def read(self, *, with_data: bool = False) -> SharedState | None:
        """The state (None before anyone wrote one); the definitions too with ``with_data``."""
        fields = ["epoch", "version", "outcome", "etag"] + (["data"] if with_data else [])
        values: list[Any] = self._client.hmget(self.state_key, fields)
        epoch, version, outcome, etag = values[:4]
        if epoch is None or version is None or outcome is None:
            return None
        return SharedState(epoch=_text(epoch), version=int(version), outcome=_text(outcome),
                           etag=_text(etag) or None,
                           data=_bytes(values[4]) if with_data else None)


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
