"""A frozen set of flag values for one identity, read without I/O from any thread."""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from .payloads import decode_payload
from .records import FlagRecord, FlagValue

logger = logging.getLogger("posthog_integrations")

ERRORS_WHILE_COMPUTING = "errors_while_computing_flags"
FLAG_MISSING = "flag_missing"
# Called on each value read (is_enabled, get_flag) of a snapshot that reports them.
Reporter = Callable[["FlagSnapshot", str, Optional[FlagValue], Optional[FlagRecord], list[str]],
                    None]
_NO_RECORDS: Mapping[str, FlagRecord] = types.MappingProxyType({})


class FlagSnapshot:
    """Flag values evaluated once, for one distinct id; every read is answered from memory.

    ``is_enabled`` and ``get_flag`` mark the flag as accessed and send ``$feature_flag_called``
    (once per distinct id, flag, value and groups); ``get_flag_payload`` is silent. A flag that
    could not be evaluated reads as its entry in the client's ``flag_defaults``, else as the
    ``default`` given to the read.
    """

    __slots__ = (
        "_accessed", "_defaults", "_errors_while_computing", "_event_properties", "_failure",
        "_lock", "_original", "_records", "_reporter", "disable_geoip", "distinct_id",
        "evaluated_at", "groups", "request_id",
    )

    def __init__(
        self,
        records: Mapping[str, FlagRecord] = _NO_RECORDS,
        *,
        distinct_id: str | None = None,
        groups: Mapping[str, Any] | None = None,
        disable_geoip: bool | None = None,
        request_id: str | None = None,
        evaluated_at: int | None = None,
        failure: str | None = None,
        errors_while_computing: bool = False,
        defaults: Mapping[str, Any] | None = None,
        reporter: Reporter | None = None,
        original: bool = True,
        accessed: Iterable[str] = (),
    ) -> None:
        self.distinct_id = distinct_id
        self.groups: Mapping[str, Any] = types.MappingProxyType(dict(groups or {}))
        self.disable_geoip = disable_geoip
        self.request_id = request_id
        self.evaluated_at = evaluated_at
        self._records: Mapping[str, FlagRecord] = types.MappingProxyType(dict(records))
        self._failure = failure
        self._errors_while_computing = errors_while_computing
        self._defaults: Mapping[str, Any] = defaults if defaults is not None else {}
        self._reporter = reporter
        self._original = original
        self._lock = threading.Lock()
        # Read keys in order, absent ones too (they were asked for); only present ones are copied.
        self._accessed: dict[str, None] = dict.fromkeys(key for key in accessed
                                                        if key in self._records)
        self._event_properties = _event_properties(self._records)

    def __repr__(self) -> str:
        return f"<FlagSnapshot {len(self._records)} flag(s)>"

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of the flags this snapshot holds a value for."""
        return tuple(key for key, record in self._records.items() if record.value is not None)

    @property
    def failure(self) -> str | None:
        """Why the evaluation got no answer (``timeout``, ``quota_limited``...), or None."""
        return self._failure

    def is_enabled(self, key: str, default: bool = False) -> bool:
        """Whether ``key`` is on (a variant counts as on); ``default`` when it has no value."""
        value = self._read(key)
        if value is None:
            return bool(self._defaults.get(key, default))
        return bool(value)

    def get_flag(self, key: str, default: Any = None) -> Any:
        """``True``, ``False`` or the variant of ``key``; ``default`` when it has no value."""
        value = self._read(key)
        if value is None:
            return self._defaults.get(key, default)
        return value

    def get_flag_payload(self, key: str) -> Any:
        """The JSON-decoded payload of ``key``, or None. Sends no event, marks nothing accessed."""
        record = self._records.get(key)
        if record is None or record.value is None:
            return None
        return decode_payload(record.payload)

    def values(self) -> dict[str, FlagValue]:
        """Every flag's value (``True``, ``False`` or a variant), read silently: no
        ``$feature_flag_called``, and nothing marked accessed, so none rides on events."""
        return {key: record.value for key, record in self._records.items()
                if record.value is not None}

    def payloads(self) -> dict[str, Any]:
        """The decoded payload of every flag that has a value and a payload, read silently."""
        decoded = {}
        for key, record in self._records.items():
            if record.value is not None and record.payload is not None:
                payload = decode_payload(record.payload)
                if payload is not None:
                    decoded[key] = payload
        return decoded

    def only_accessed(self) -> FlagSnapshot:
        """A snapshot of only the flags read so far (empty when none was)."""
        with self._lock:
            accessed = [key for key in self._accessed if key in self._records]
        return self._child(accessed)

    def only(self, keys: Iterable[str]) -> FlagSnapshot:
        """A snapshot of only ``keys``; keys this snapshot does not hold are left out."""
        wanted = list(dict.fromkeys(keys))
        unknown = [key for key in wanted if key not in self._records]
        if unknown:
            logger.warning("FlagSnapshot.only(): %d key(s) are not in the snapshot and are left "
                           "out: %s", len(unknown), ", ".join(map(repr, unknown[:10])))
        return self._child([key for key in wanted if key in self._records])

    def event_properties(self) -> dict[str, Any]:
        """``$feature/<key>`` for each flag and the sorted ``$active_feature_flags`` (a copy, so
        that an event's ``before_send`` changing its list changes no other event)."""
        properties = dict(self._event_properties)
        active = properties.get("$active_feature_flags")
        if active is not None:
            properties["$active_feature_flags"] = list(active)
        return properties

    def accessed_event_properties(self) -> dict[str, Any]:
        """:meth:`event_properties` of only the flags read so far (``only_accessed()``'s)."""
        with self._lock:
            accessed = list(self._accessed)
        records = self._records
        return _event_properties({key: records[key] for key in accessed if key in records})

    def _child(self, keys: list[str]) -> FlagSnapshot:
        with self._lock:
            accessed = list(self._accessed)
        return FlagSnapshot(
            {key: self._records[key] for key in keys}, distinct_id=self.distinct_id,
            groups=self.groups, disable_geoip=self.disable_geoip, request_id=self.request_id,
            evaluated_at=self.evaluated_at, failure=self._failure,
            errors_while_computing=self._errors_while_computing, defaults=self._defaults,
            reporter=self._reporter, original=False, accessed=accessed,
        )

    def _read(self, key: str) -> FlagValue | None:
        record = self._records.get(key)
        value = record.value if record is not None else None
        if record is None and not self._original:
            return None  # a child snapshot reports only the flags it holds
        with self._lock:
            self._accessed[key] = None
        if self._reporter is not None:
            self._reporter(self, key, value, record, self._errors_for(record))
        return value

    def _errors_for(self, record: FlagRecord | None) -> list[str]:
        # The server's trouble computing flags concerns only the flags it answered.
        remote = record is None or not record.local
        errors = [ERRORS_WHILE_COMPUTING] if self._errors_while_computing and remote else []
        if record is not None:
            if record.error is not None:
                errors.append(record.error)
        elif self._failure is not None:
            errors.append(self._failure)
        else:
            errors.append(FLAG_MISSING)
        return errors


def _event_properties(records: Mapping[str, FlagRecord]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    active = []
    for key, record in records.items():
        if record.value is None:
            continue
        properties[f"$feature/{key}"] = record.value
        if record.value:
            active.append(key)
    if active:
        properties["$active_feature_flags"] = sorted(active)
    return properties
