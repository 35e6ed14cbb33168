"""Warnings about refused events, at most one line per kind of problem per minute.

A caller that sends the same bad input on every request would otherwise write one line per
event; the refusals themselves are all counted in ``stats()``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("posthog_integrations")

NOTICE_INTERVAL = 60.0


class Notices:
    """Per-client rate limit on warnings, keyed by a kind named in the library's code."""

    def __init__(self, interval: float = NOTICE_INTERVAL) -> None:
        self._interval = interval
        self._next: dict[str, float] = {}

    def warn(self, kind: str, message: str, *args: Any, exc_info: bool = False,
             counted: bool = True) -> None:
        """Log ``message`` unless a line of this ``kind`` was logged within the interval;
        ``counted`` says whether stats() counts what the line is about (a dropped event)."""
        now = time.monotonic()
        due = self._next.get(kind)
        if due is not None and now < due:
            return
        self._next[kind] = now + self._interval
        counting = "more of these are counted in stats(), " if counted else "more of these are "
        logger.warning(message + f" ({counting}logged at most once a minute)", *args,
                       exc_info=exc_info)
