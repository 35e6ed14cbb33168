"""Delivery counters, so that nothing is dropped silently."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping

DROP_REASONS = (
    "queue_full", "before_send", "oversize", "failed", "shutdown", "invalid", "disabled",
    "invalid_configuration", "exception_storm", "rejected",
)
# ``rejected`` (capture v1: the server answered ``drop`` for the event) is broken down by the
# answer's ``details``; at most this many distinct details are kept, the rest count as "other".
MAX_REJECTED_DETAILS = 50
REJECTED_PREFIX = "rejected."
# What of a context did not reach a background task (the Celery integration's message header):
# tags left out to keep it under its size cap, whole headers left out because even the identity
# was over it, headers not built because reading the context failed, and headers a worker could
# not read. The task itself always runs, so these are not dropped events.
CONTEXT_DROP_REASONS = ("header_tags_oversize", "header_oversize", "header_failed",
                        "header_unreadable")


@dataclasses.dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters.

    ``queued`` is what waits to be sent now; ``dropped`` totals every reason in
    ``dropped_by_reason`` (``failed`` counts events of batches that finally failed).
    ``context_dropped_by_reason`` counts what of a context did not travel with a task (see
    ``CONTEXT_DROP_REASONS``); it is not part of ``dropped``. ``rejected_by_details`` breaks
    ``dropped_by_reason["rejected"]`` (events the v1 endpoint answered ``drop``) down by the
    reason the server gave, such as ``billing_limit_exceeded``.
    """

    accepted: int
    queued: int
    sent: int
    retried: int
    failed_batches: int
    dropped_by_reason: Mapping[str, int]
    context_dropped_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)
    rejected_by_details: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())


class Counters:
    """Thread-safe counters for the rare paths; the hot path is counted by the sender."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> int:
        """Increase ``name`` by ``amount`` and return its new value."""
        with self._lock:
            value = self._values.get(name, 0) + amount
            self._values[name] = value
            return value

    def add_rejected(self, details: str, amount: int) -> None:
        """Count ``amount`` events the server rejected for ``details`` (bounded in kinds)."""
        with self._lock:
            name = REJECTED_PREFIX + details[:100]
            if name not in self._values and sum(
                    key.startswith(REJECTED_PREFIX) for key in self._values) >= \
                    MAX_REJECTED_DETAILS:
                name = REJECTED_PREFIX + "other"
            self._values[name] = self._values.get(name, 0) + amount

    def reset(self) -> None:
        """Start from zero with a new lock (in a forked child the old one may be held)."""
        self._lock = threading.Lock()
        self._values = {}

    def get(self, name: str) -> int:
        return self._values.get(name, 0)

    def snapshot(self, *, queued: int) -> ClientStats:
        with self._lock:
            values = dict(self._values)
        dropped = {reason: values.get(f"dropped.{reason}", 0) for reason in DROP_REASONS}
        return ClientStats(
            accepted=values.get("taken", 0) + queued,
            queued=queued,
            sent=values.get("sent", 0),
            retried=values.get("retried", 0),
            failed_batches=values.get("failed_batches", 0),
            dropped_by_reason=dropped,
            context_dropped_by_reason={reason: values.get(f"context_dropped.{reason}", 0)
                                       for reason in CONTEXT_DROP_REASONS},
            rejected_by_details={name[len(REJECTED_PREFIX):]: value
                                 for name, value in values.items()
                                 if name.startswith(REJECTED_PREFIX)},
        )
