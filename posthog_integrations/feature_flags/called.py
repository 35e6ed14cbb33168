"""``$feature_flag_called``: its properties, and the bounded record of what was already sent.

The event goes out once per (distinct id, flag, value, groups). The record keeps at most
50,000 distinct ids; when full, the one recorded first is forgotten (never everything at once).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import Any

from .payloads import decode_payload
from .records import FlagRecord, FlagValue

MAX_DISTINCT_IDS = 50_000
CalledKey = tuple[str, Any, tuple[tuple[str, str], ...]]


class CalledTracker:
    """Thread-safe check-and-record of the ``$feature_flag_called`` events already sent."""

    def __init__(self, max_distinct_ids: int = MAX_DISTINCT_IDS) -> None:
        self._max = max_distinct_ids
        self._lock = threading.Lock()
        self._sent: collections.OrderedDict[str, set[CalledKey]] = collections.OrderedDict()

    def first_time(self, distinct_id: str, key: str, value: FlagValue | None,
                   groups: Mapping[str, Any]) -> bool:
        """Record this call; True only the first time it is seen for ``distinct_id``."""
        entry: CalledKey = (key, value, tuple(sorted((str(k), str(v)) for k, v in groups.items())))
        with self._lock:
            seen = self._sent.get(distinct_id)
            if seen is None:
                if len(self._sent) >= self._max:
                    self._sent.popitem(last=False)
                seen = self._sent[distinct_id] = set()
            if entry in seen:
                return False
            seen.add(entry)
            return True

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def after_fork_in_child(self) -> None:
        """A new lock: a thread of the parent may have held the old one at the fork."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sent)


def called_properties(key: str, value: FlagValue | None, record: FlagRecord | None, *,
                      errors: list[str], request_id: str | None,
                      evaluated_at: int | None) -> dict[str, Any]:
    """The properties of one ``$feature_flag_called`` event (``$groups`` is added by capture)."""
    properties: dict[str, Any] = {
        "$feature_flag": key,
        "$feature_flag_response": value,
        f"$feature/{key}": value,
        "locally_evaluated": record is not None and record.local,
    }
    if record is not None:
        payload = decode_payload(record.payload) if record.value is not None else None
        if payload is not None:
            properties["$feature_flag_payload"] = payload
        if record.reason:
            properties["$feature_flag_reason"] = record.reason
        if record.version:
            properties["$feature_flag_version"] = record.version
        if record.flag_id:
            properties["$feature_flag_id"] = record.flag_id
        if record.has_experiment is not None:
            properties["$feature_flag_has_experiment"] = record.has_experiment
    if request_id is not None:
        properties["$feature_flag_request_id"] = request_id
    if evaluated_at is not None and (record is None or not record.local):
        properties["$feature_flag_evaluated_at"] = evaluated_at
    if errors:
        properties["$feature_flag_error"] = ",".join(errors)
    return properties
