"""What local evaluation answers for one flag: a decided value, or why it is left undecided."""

from __future__ import annotations

from typing import Any, NamedTuple, Union

from posthog_integrations.feature_flags.local.errors import REASONS

REQUIRES_SERVER = "requires_server"
"""Only the server can decide the flag (a static cohort, say)."""
NOT_IN_DEFINITIONS = "not_in_definitions"
"""The definitions have no flag of that key."""


class Decided(NamedTuple):
    """The flag's value (``True``/``False`` or a variant key) and its payload as stored in
    ``filters.payloads`` (a JSON string usually; None when absent)."""

    value: bool | str
    payload: Any


class Undecided(NamedTuple):
    """Local evaluation cannot decide the flag; ``reason`` is one of :data:`errors.REASONS`,
    :data:`REQUIRES_SERVER` or :data:`NOT_IN_DEFINITIONS`."""

    reason: str


Result = Union[Decided, Undecided]

UNDECIDED = {reason: Undecided(reason) for reason in (*REASONS, REQUIRES_SERVER,
                                                      NOT_IN_DEFINITIONS)}
"""One shared answer per reason, so evaluating allocates none."""


def undecided(reason: str) -> Undecided:
    """The shared :class:`Undecided` for ``reason``."""
    shared = UNDECIDED.get(reason)
    return Undecided(reason) if shared is None else shared
