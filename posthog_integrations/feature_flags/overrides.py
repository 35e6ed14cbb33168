"""Flag values set by the testing helpers, answered by every evaluator in the process.

``posthog_integrations.testing.override_flags()`` and the ``posthog_flags`` fixture add a layer
here; the newest layer answers alone. Layers may end in any order and from any thread: the
newest one left is published in :data:`current`, which :class:`FlagEvaluator` reads once per
evaluation (one global lookup when nothing is overridden).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import types
from collections.abc import Mapping, Sequence
from typing import Any

from .records import FlagRecord
from .snapshot import FlagSnapshot, Reporter

logger = logging.getLogger("posthog_integrations")


class FlagOverrides:
    """A validated, frozen set of flag values and payloads that stands in for ``/flags``."""

    __slots__ = ("_records",)

    def __init__(self, flags: Any = None, payloads: Any = None) -> None:
        """TypeError or ValueError, naming the flag, for anything ``/flags`` could not answer."""
        self._records: Mapping[str, FlagRecord] = types.MappingProxyType(
            _records(flags if flags is not None else {}, payloads))

    def __repr__(self) -> str:
        return f"<FlagOverrides {sorted(self._records)!r}>"

    def snapshot(self, distinct_id: str | None, groups: Mapping[str, Any], disable_geoip: bool,
                 flag_keys: Sequence[str] | None, *, defaults: Mapping[str, Any],
                 reporter: Reporter | None) -> FlagSnapshot:
        """What an evaluation for ``distinct_id`` gets: the overridden flags among ``flag_keys``.

        Without an identity the snapshot is empty, as a real evaluation's would be.
        """
        common: dict[str, Any] = {"distinct_id": distinct_id, "groups": groups,
                                  "disable_geoip": disable_geoip, "defaults": defaults}
        if distinct_id is None:
            _warn_once("override_flags(): a flag was evaluated without a distinct id, so it "
                       "reads as its default (as it would without the override); pass "
                       "distinct_id or identify the context")
            return FlagSnapshot(**common)
        records = self._records
        if flag_keys is not None:
            records = {key: records[key] for key in flag_keys if key in records}
        return FlagSnapshot(records, reporter=reporter if flag_keys != [] else None, **common)


class OverrideLayer:
    """One active set of overrides; :meth:`replace` swaps its values while it lasts."""

    def __init__(self, flag_overrides: FlagOverrides) -> None:
        self._overrides = flag_overrides

    def replace(self, flag_overrides: FlagOverrides) -> None:
        with _lock:
            self._overrides = flag_overrides
            _publish()

    def remove(self) -> None:
        """End this layer; the newest layer left (or the real evaluation) answers again."""
        with _lock:
            if self in _layers:
                _layers.remove(self)
                _publish()
            last = not _layers
        if last:
            _forget_called_events()


# Read by FlagEvaluator.prepare() without the lock: assigning it is atomic.
current: FlagOverrides | None = None
_layers: list[OverrideLayer] = []
_lock = threading.Lock()
_warned: set[str] = set()


def push(flag_overrides: FlagOverrides) -> OverrideLayer:
    """Start answering every evaluation from ``flag_overrides`` until the layer is removed."""
    layer = OverrideLayer(flag_overrides)
    with _lock:
        first = not _layers
        _layers.append(layer)
        _publish()
    if first:
        _forget_called_events()
    return layer


def _forget_called_events() -> None:
    """When the first layer starts and the last one ends: a test's reads report afresh, never
    deduplicated against an earlier test's (or against the real evaluations around it)."""
    from .evaluator import forget_called_events  # evaluator imports this module

    forget_called_events()


def _new_lock_in_child() -> None:
    """A thread of the parent may have held the lock at the fork."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _publish() -> None:
    global current
    current = _layers[-1]._overrides if _layers else None


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def _records(flags: Any, payloads: Any) -> dict[str, FlagRecord]:
    if not isinstance(flags, Mapping):
        raise TypeError(f"override_flags() takes a mapping of flag key to value, got "
                        f"{type(flags).__name__}")
    if payloads is None:
        payloads = {}
    if not isinstance(payloads, Mapping):
        raise TypeError(f"override_flags(): payloads must be a mapping of flag key to payload, "
                        f"got {type(payloads).__name__}")
    records: dict[str, FlagRecord] = {}
    for key, value in flags.items():
        if not isinstance(key, str):
            raise TypeError(f"override_flags(): flag keys must be strings, got {key!r}")
        if not key:
            raise ValueError("override_flags(): a flag key is empty")
        if not isinstance(value, (bool, str)):
            raise TypeError(f"override_flags(): flag {key!r} must be True, False or a variant "
                            f"string, got {type(value).__name__}")
        if value == "":
            raise ValueError(f"override_flags(): flag {key!r} has an empty variant")
        records[key] = FlagRecord(key, value)
    for key, payload in payloads.items():
        if key not in records:
            raise ValueError(f"override_flags(): payload for {key!r}, which is not in the "
                             f"overridden flags")
        if payload is None:
            continue
        if records[key].value is False:
            raise ValueError(f"override_flags(): flag {key!r} is off, so it cannot have a "
                             f"payload")
        records[key] = FlagRecord(key, records[key].value, payload=_encoded(key, payload))
    return records


def _encoded(key: str, payload: Any) -> str:
    """The payload as the JSON text ``/flags`` would send (each read decodes a fresh copy)."""
    try:
        return json.dumps(payload, allow_nan=False)
    except TypeError:
        raise TypeError(f"override_flags(): the payload of {key!r} is not JSON-serialisable "
                        f"({type(payload).__name__})") from None
    except ValueError as error:
        raise ValueError(f"override_flags(): the payload of {key!r} is not JSON: "
                         f"{error}") from None
