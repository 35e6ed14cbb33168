"""Capture v1 (``POST /i/v1/analytics/events``): events, body, headers and per-event results.

A :class:`V1Batch` is one batch on its way: its events converted once, at the first attempt,
and kept as encoded bytes by uuid, so every retry resends them byte for byte with the same
``PostHog-Request-Id`` and ``created_at``; only ``PostHog-Attempt`` and
``PostHog-Request-Timestamp`` change. After a 2xx answer, :meth:`V1Batch.settle` splits the
pending events into done, dropped (``drop``, with the server's details) and to retry.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid as uuid_module
import zlib
from collections.abc import Mapping
from typing import Any

from .events import normalize_timestamp, utc_now
from .serialization import encode_event
from .transport import USER_AGENT, Answer

V1_PATH = "/i/v1/analytics/events"
ANSWER_BYTES = 64 * 1024  # of a results answer, plus ANSWER_BYTES_PER_EVENT per event
ANSWER_BYTES_PER_EVENT = 100
# 404 (a proxy that does not know the path yet), 429 and 5xx are transient; other 4xx final.
RETRYABLE_STATUSES = frozenset({404, 408, 429})
_LIFTED = ("$lib", "$lib_version")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
# property -> (options key, "bool" or "str")
_OPTION_SENTINELS = {
    "$cookieless_mode": ("cookieless_mode", "bool"),
    "$ignore_sent_at": ("disable_skew_correction", "bool"),
    "$process_person_profile": ("process_person_profile", "bool"),
    "$product_tour_id": ("product_tour_id", "str"),
}

Event = dict[str, Any]


class CaptureRejected(Exception):
    """The v1 endpoint answered ``drop`` for some events; ``drops`` is ``[(uuid, details)]``."""

    def __init__(self, drops: list[tuple[str, str]]) -> None:
        reasons = sorted({details for _, details in drops})
        super().__init__(f"the capture endpoint rejected {len(drops)} event(s): "
                         f"{', '.join(reasons)}")
        self.drops = drops


class RetriesExhausted(Exception):
    """Events the v1 endpoint asked to retry were still not stored after the last attempt."""


def v1_event(event: Event) -> Event:
    """``event`` (as the client builds it) in the v1 shape; the original is not changed."""
    properties = dict(event.get("properties") or {})
    for key in ("$set", "$set_once"):  # v1 has no top-level $set: into properties
        updates = event.get(key)
        if isinstance(updates, Mapping):
            inside = properties.get(key)
            properties[key] = {**updates, **inside} if isinstance(inside, Mapping) else \
                dict(updates)
    for key in _LIFTED:
        properties.pop(key, None)
    properties.pop("distinct_id", None)
    options: dict[str, Any] = {}
    for name, (option, kind) in _OPTION_SENTINELS.items():
        if name in properties:
            value = _coerced(properties.pop(name), kind)
            if value is not None:
                options[option] = value
    timestamp = event.get("timestamp")
    if not (isinstance(timestamp, str) and _UTC.match(timestamp)):
        timestamp = normalize_timestamp(timestamp)
    out: Event = {
        "event": event.get("event"),
        "uuid": str(uuid_module.UUID(str(event.get("uuid")))),
        "distinct_id": str(event.get("distinct_id")),
        "timestamp": timestamp,
    }
    for name, root in (("$session_id", "session_id"), ("$window_id", "window_id")):
        value = properties.get(name)
        if isinstance(value, str) and value:
            out[root] = value
    if options:
        out["options"] = options
    out["properties"] = properties
    return out


def _coerced(value: Any, kind: str) -> bool | str | None:
    """An option's value as the server reads it, or None when it would not read it."""
    if kind == "str":
        return value if isinstance(value, str) else None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def compress(body: bytes, compression: str) -> tuple[bytes, str | None]:
    """``body`` compressed as asked, and its ``Content-Encoding`` (None when plain)."""
    if compression == "gzip":
        import gzip

        return gzip.compress(body, compresslevel=6), "gzip"
    if compression == "deflate":
        return zlib.compress(body, 6), "deflate"  # zlib-wrapped, as the server expects
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(body), "zstd"
    return body, None


@dataclasses.dataclass
class Settled:
    """What one 2xx answer decided for the pending events."""

    done: list[Event]
    dropped: list[tuple[Event, str]]  # (event, details)
    retry: list[Event]


class V1Batch:
    """One batch in v1 form, from its first attempt to its last."""

    def __init__(self, events: list[Event], *, api_key: str, compression: str,
                 historical_migration: bool) -> None:
        self.request_id = str(uuid_module.uuid4())
        self.created_at = utc_now()
        self.attempt = 0
        self._api_key = api_key
        self._compression = compression
        self._historical_migration = historical_migration
        self.duplicates: list[Event] = []  # a uuid already in the batch would fail it all
        self._encoded: dict[str, bytes] = {}
        self._events: dict[str, Event] = {}
        for event in events:
            converted = v1_event(event)
            uuid = converted["uuid"]
            if uuid in self._encoded:
                self.duplicates.append(event)
                continue
            self._encoded[uuid] = encode_event(converted)
            self._events[uuid] = event
        self.pending: list[str] = list(self._encoded)

    def pending_events(self) -> list[Event]:
        return [self._events[uuid] for uuid in self.pending]

    def request(self) -> tuple[bytes, dict[str, str]]:
        """The next attempt's body and headers (the attempt number goes up by one)."""
        self.attempt += 1
        head: dict[str, Any] = {"created_at": self.created_at}
        if self._historical_migration:
            head["historical_migration"] = True
        prefix = json.dumps(head, separators=(",", ":"))[:-1].encode()
        body = b"".join((prefix, b',"batch":[',
                         b",".join(self._encoded[uuid] for uuid in self.pending), b"]}"))
        body, encoding = compress(body, self._compression)
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "PostHog-Sdk-Info": USER_AGENT,
            "PostHog-Attempt": str(self.attempt),
            "PostHog-Request-Id": self.request_id,
            "PostHog-Request-Timestamp": utc_now(),
        }
        if encoding is not None:
            headers["Content-Encoding"] = encoding
        return body, headers

    def answer_bound(self) -> int:
        """How many bytes of the answer to read: enough for a result per pending event."""
        return ANSWER_BYTES + ANSWER_BYTES_PER_EVENT * len(self.pending)

    def settle(self, answer: Answer) -> Settled:
        """Apply a 2xx answer's per-event results; ``pending`` becomes the events to retry.

        ``ok``, ``warning``, ``limited``, any other result, a missing one, and every result of an
        answer that is not a readable ``{"results": {...}}`` count as done: never resent.
        """
        results = _results(answer.body)
        settled = Settled([], [], [])
        retry: list[str] = []
        for uuid in self.pending:
            entry = results.get(uuid) if results is not None else None
            result = entry.get("result") if isinstance(entry, Mapping) else None
            event = self._events[uuid]
            if result == "retry":
                retry.append(uuid)
                settled.retry.append(event)
            elif result == "drop":
                details = entry.get("details") if isinstance(entry, Mapping) else None
                settled.dropped.append((event, details if isinstance(details, str) and details
                                        else "unspecified"))
            else:
                settled.done.append(event)
        self.pending = retry
        return settled


def _results(body: bytes) -> Mapping[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    results = parsed.get("results") if isinstance(parsed, dict) else None
    return results if isinstance(results, dict) else None


def is_retryable_status(status: int) -> bool:
    """Whether a v1 request answered ``status`` may be sent again."""
    return status >= 500 or status in RETRYABLE_STATUSES
