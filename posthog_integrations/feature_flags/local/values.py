"""Property values as the flags service reads them: JSON strings, numbers and truthiness."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from posthog_integrations.feature_flags.local.errors import Inconclusive

_ASCII_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BOOLEAN_TEXTS = frozenset(("true", "false"))
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_text(value: Any, reason: str) -> str:
    """``value`` as the service compares it: a string as it is, anything else as JSON.

    Raises ``Inconclusive(reason)`` for what JSON cannot carry (NaN, infinities, other types).
    """
    if isinstance(value, str):
        return value
    return _json(value, reason)


def ascii_lower(text: str) -> str:
    """``text`` with only A-Z lowered, as the service's text operators do (``É`` stays)."""
    if text.isascii():
        return text.lower()
    return text.translate(_ASCII_UPPER_TO_LOWER)


def _json(value: Any, reason: str) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value, reason)
    if isinstance(value, list):
        return "[" + ",".join(_json(item, reason) for item in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Inconclusive(reason)
        return "{" + ",".join(json.dumps(key, ensure_ascii=False) + ":" + _json(value[key], reason)
                              for key in sorted(value)) + "}"
    raise Inconclusive(reason)


def _json_float(value: float, reason: str) -> str:
    """Python's shortest repr, with exponents -5..-1 written out and a signed exponent."""
    if not math.isfinite(value):
        raise Inconclusive(reason)
    text = repr(value)
    mantissa, _, exponent_text = text.partition("e")
    if not exponent_text:
        return text
    exponent = int(exponent_text)
    if -6 < exponent < 0:
        return f"{Decimal(text):f}"
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def parse_number(value: Any) -> float | None:
    """A finite number from a number or a plain decimal string; None otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if _NUMBER.fullmatch(value) is None:
            return None
    elif not isinstance(value, (int, float, Decimal)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def is_boolean_like(value: Any) -> bool:
    """A bool, ``"true"``/``"false"`` in any case, or a list made only of such."""
    if isinstance(value, str):
        return len(value) in (4, 5) and value.lower() in _BOOLEAN_TEXTS
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        for item in value:  # noqa: SIM110 - a loop is faster than all() on this hot path
            if not is_boolean_like(item):
                return False
        return True
    return False


def is_truthy(value: Any) -> bool:
    """True, ``"true"`` in any case, or a list all of whose items are truthy (``[]`` is)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, list):
        for item in value:  # noqa: SIM110 - a loop is faster than all() on this hot path
            if not is_truthy(item):
                return False
        return True
    return False
