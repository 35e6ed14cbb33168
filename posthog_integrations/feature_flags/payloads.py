"""Decoding a flag's payload: JSON text becomes a value, anything unreadable becomes None."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("posthog_integrations")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_payload(raw: Any) -> Any:
    """``raw`` decoded when it is JSON text (NaN and Infinity refused), as is otherwise."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        logger.debug("a flag payload is not valid JSON; it reads as None")
        return None
