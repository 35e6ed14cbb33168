"""JSON encoding of events that never fails and never drops the event.

The fast path is one ``json.dumps`` call with a ``default`` hook for the common non-JSON types.
Only when that fails (NaN, cycles, odd keys, objects we do not know) does the slow path walk the
value and replace what cannot be sent with something safe, logging each bad type once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("posthog_integrations")

MAX_DEPTH = 64
MAX_REPR = 1024
MAX_INT_BITS = 2000  # about 600 digits: under the lowest limit Python allows on int -> str (640)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_warned_types: set[str] = set()


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Serialize one event to compact UTF-8 JSON. Never raises."""
    try:
        text = _dumps(event)
    except (TypeError, ValueError, RecursionError):
        text = _dumps(make_json_safe(event))
    return text.encode("utf-8", "surrogatepass")


def is_plain(properties: Mapping[str, Any]) -> bool:
    """True when every value is an immutable JSON scalar, so encoding can safely happen later."""
    return _SCALARS.issuperset(map(type, properties.values()))


def make_json_safe(value: Any) -> Any:
    """Return a deep copy of ``value`` made only of JSON types. Never raises."""
    return _safe(value, set(), 0)


def _dumps(value: Any) -> str:
    return json.dumps(
        value, default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    )


def _default(value: Any) -> Any:
    """Conversions for the common types the C encoder does not know."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return float(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError  # hands the whole event to the slow, careful path


def _safe(value: Any, active: set[int], depth: int) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        return _repr(value)  # json.dumps may refuse its digits (sys.get_int_max_str_digits)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if depth >= MAX_DEPTH:
        _warn_once("nesting deeper than 64 levels", "was cut")
        return None
    marker = id(value)
    if marker in active:
        _warn_once("a reference cycle", "was replaced by null")
        return None
    active.add(marker)
    try:
        return _safe_container(value, active, depth + 1)
    except Exception:  # a broken __iter__, items() or property on a user object
        return _repr(value)
    finally:
        active.discard(marker)


def _safe_container(value: Any, active: set[int], depth: int) -> Any:
    if isinstance(value, Mapping):
        return {_safe_key(key): _safe(item, active, depth) for key, item in list(value.items())}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_safe(item, active, depth) for item in list(value)]
    if isinstance(value, decimal.Decimal):
        return None if value.is_nan() else str(value)
    with contextlib.suppress(TypeError):  # a type _default does not know
        return _safe(_default(value), active, depth)
    model_dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(model_dump):
        return _safe(model_dump(), active, depth)
    return _repr(value)


def _safe_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, bool)) or key is None:
        return json.dumps(key)
    return str(_repr(key))


def _repr(value: Any) -> str:
    type_name = type(value).__qualname__
    _warn_once(f"a value of type {type_name}", "was sent as its repr()")
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type_name}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _warn_once(what: str, outcome: str) -> None:
    if what in _warned_types or len(_warned_types) > 256:
        return
    _warned_types.add(what)
    logger.warning("event property %s is not JSON-serializable and %s", what, outcome)
