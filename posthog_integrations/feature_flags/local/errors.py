"""Why a flag could not be decided locally, and which reason wins when there are several."""

from __future__ import annotations

from collections.abc import Iterable

EXPERIENCE_CONTINUITY = "experience_continuity"
UNSUPPORTED_DEFINITION = "unsupported_definition"
UNRESOLVED_DEPENDENCY = "unresolved_dependency"
MISSING_CONTEXT = "missing_context"
REASONS = (EXPERIENCE_CONTINUITY, UNSUPPORTED_DEFINITION, UNRESOLVED_DEPENDENCY, MISSING_CONTEXT)
"""The reasons, the one reported first when several apply first."""


class Inconclusive(Exception):
    """The definitions cannot decide this (for this input); the server may."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequiresServer(Exception):
    """Only the server can decide the whole flag (a static cohort, say)."""


def worst(reasons: Iterable[str]) -> str:
    """The reason to report among ``reasons`` (non-empty), by the spec's precedence."""
    return min(reasons, key=lambda reason: REASONS.index(reason) if reason in REASONS
               else len(REASONS))
