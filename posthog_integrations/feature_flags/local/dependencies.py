"""Flag dependencies (spec §13): ``{"type": "flag", "key": parent, "operator":
"flag_evaluates_to", "value": expected, "dependency_chain": [..., parent]}``.

The chain is the order in which the flags it names are evaluated and cached for the flag being
evaluated; the filter matches when the parent's value matches ``expected``. A malformed filter
is a plain no-match; a missing or empty chain (the server's mark of a cycle) or a chain member
without a definition is undecided; a cycle the chain did not announce is caught while
evaluating and sent to the server.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from posthog_integrations.feature_flags.local.errors import (
    UNRESOLVED_DEPENDENCY,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
    RequiresServer,
)
from posthog_integrations.feature_flags.local.filters import Compiled, Properties, State

log = logging.getLogger("posthog_integrations")

EVALUATING = object()
"""The cache's mark of a flag whose evaluation is under way: meeting it again is a cycle."""


def shape_problem(spec: Mapping[str, Any]) -> str | None:
    """Why a dependency filter is malformed (it then never matches), or None."""
    operator = spec.get("operator", "exact")
    if operator != "flag_evaluates_to":
        return f"its operator is {operator!r}, not 'flag_evaluates_to'"
    if not spec.get("key") or spec.get("value") is None:
        return "it names no flag or no expected value"
    return None


def chain_problem(spec: Mapping[str, Any], defined: Collection[str]) -> str | None:
    """Why a well-shaped dependency filter can never be decided locally, or None."""
    chain = spec.get("dependency_chain")
    if not isinstance(chain, list):
        return "its dependency chain is missing"
    if not chain:
        return f"it depends on flag {spec.get('key')!r} in a cycle"
    missing = next((key for key in chain if key not in defined), None)
    if missing is not None:
        return f"it depends on flag {missing!r}, which is not in the definitions"
    return None


def matches_value(expected: Any, actual: Any) -> bool:
    """Whether a parent's value ``actual`` satisfies the filter's ``expected`` value."""
    if isinstance(actual, str) and actual:
        if isinstance(expected, bool):
            return expected
        return isinstance(expected, str) and actual == expected
    return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected


def _no_match(props: Properties, identity: bytes, state: State) -> bool:
    return False


def _undecidable(props: Properties, identity: bytes, state: State) -> bool:
    raise Inconclusive(UNSUPPORTED_DEFINITION)


def compile_dependency(spec: Mapping[str, Any], defined: Collection[str]) -> Compiled:
    """The filter, given the keys of every flag in the definitions."""
    problem = shape_problem(spec)
    if problem is not None:
        log.warning("feature flag dependency on %r never matches locally: %s",
                    spec.get("key"), problem)
        return Compiled(_no_match, spec, False)
    if chain_problem(spec, defined) is not None:
        return Compiled(_undecidable, spec, False)
    chain: tuple[str, ...] = tuple(spec["dependency_chain"])
    parent: str = spec["key"]
    expected = spec["value"]
    parent_defined = parent in defined

    def run(props: Properties, identity: bytes, state: State) -> bool:
        cache = state.cache
        if cache is None:
            cache = state.cache = {}
        for key in chain:
            value = cache.get(key)
            if value is EVALUATING:
                raise RequiresServer(UNSUPPORTED_DEFINITION)
            if value is None and key not in cache:
                state.dependency(key, props, identity, state)
        actual = cache.get(parent)
        if actual is EVALUATING:
            raise RequiresServer(UNSUPPORTED_DEFINITION)
        if actual is None:
            raise Inconclusive(UNRESOLVED_DEPENDENCY if parent_defined and parent in cache
                               else UNSUPPORTED_DEFINITION)
        return matches_value(expected, actual)

    return Compiled(run, spec, True)

