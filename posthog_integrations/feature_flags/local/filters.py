"""Compiled filters and the per-evaluation state they read; one condition's AND of filters.

A compiled filter is ``(run, spec)``: ``run`` is None for a person or group property filter,
which costs exactly one :func:`properties.match_property` call, or a function built once per
definitions for a cohort or a flag dependency.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.errors import (
    REASONS,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
    RequiresServer,
)

Properties = Mapping[str, Any]
Run = Callable[[Properties, bytes, "State"], bool]
"""A compiled cohort or dependency: (properties, identity, state) -> matches; may raise."""
DependencyEvaluator = Callable[[str, Properties, bytes, "State"], None]

_RANK = {reason: rank for rank, reason in enumerate(REASONS)}


class Compiled(NamedTuple):
    """One filter, ready to run; ``may_need_server``: it can raise :class:`RequiresServer`."""

    run: Run | None
    spec: Mapping[str, Any]
    may_need_server: bool = False


Filters = tuple[tuple[Optional[Run], Mapping[str, Any]], ...]


class State:
    """What one evaluation pass carries besides the properties.

    ``cache`` holds the values of the flags a dependency evaluated (None: undecided) for the
    top-level flag being evaluated; the engine resets it to None before each flag.
    """

    __slots__ = ("cache", "dependency", "device", "matching_version")

    def __init__(self, matching_version: int, device: bytes | None,
                 dependency: DependencyEvaluator) -> None:
        self.matching_version = matching_version
        self.device = device
        self.dependency = dependency
        self.cache: dict[str, Any] | None = None


def stronger(current: str | None, new: str) -> str:
    """The reason to keep of ``current`` and ``new`` (spec §14's precedence)."""
    if current is None or _RANK.get(new, len(_RANK)) < _RANK.get(current, len(_RANK)):
        return new
    return current


def server_reason(error: RequiresServer) -> str:
    """The reason a :class:`RequiresServer` carries as its argument (unsupported by default)."""
    reason = error.args[0] if error.args else None
    return reason if isinstance(reason, str) and reason in _RANK else UNSUPPORTED_DEFINITION


def match_all(filters: Filters, props: Properties, identity: bytes, state: State) -> bool:
    """A condition's filters (AND): False at the first definitive miss.

    Undecided filters do not stop the loop (a later one may still miss). A filter needing the
    server propagates only when no filter before it was undecided (spec §9.1).
    """
    reason: str | None = None
    needs_server: RequiresServer | None = None
    version = state.matching_version
    match_property = properties.match_property
    for run, spec in filters:
        try:
            if run is None:
                if not match_property(spec, props, matching_version=version):
                    return False
            elif not run(props, identity, state):
                return False
        except RequiresServer as error:
            if reason is None:
                needs_server = error
            reason = stronger(reason, server_reason(error))
        except Inconclusive as error:
            reason = stronger(reason, error.reason)
        except Exception:
            # After an undecided filter, a failing one leaves the condition undecided too.
            if reason is None:
                raise
            break
    if needs_server is not None:
        raise needs_server
    if reason is not None:
        raise Inconclusive(reason)
    return True
