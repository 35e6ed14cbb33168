"""Cohort filters (spec §12): each cohort's property group compiled once per definitions.

A cohort absent from the definitions is static (its members are known only to the server):
the flag needs the server. A group is AND/OR of entries, each a nested group or a filter
(person property, cohort, flag dependency) that may be negated; an AND is False at any
definitive False, an OR True at any definitive True, otherwise undecided entries make it
undecided. A server-only entry anywhere in the group always propagates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.errors import (
    UNSUPPORTED_DEFINITION,
    Inconclusive,
    RequiresServer,
)
from posthog_integrations.feature_flags.local.filters import (
    Compiled,
    Properties,
    Run,
    State,
    stronger,
)

COHORT_OPERATORS = ("exact", "in", "not_in")
Entry = tuple[Optional[Run], Mapping[str, Any], bool]


def is_nested_group(entry: Mapping[str, Any]) -> bool:
    """Whether a cohort group entry is itself a group rather than a filter."""
    return entry == {} or "values" in entry or entry.get("type") in ("AND", "OR")


def _always_true(props: Properties, identity: bytes, state: State) -> bool:
    return True


def _needs_server(props: Properties, identity: bytes, state: State) -> bool:
    raise RequiresServer(UNSUPPORTED_DEFINITION)


def _unsupported(props: Properties, identity: bytes, state: State) -> bool:
    raise Inconclusive(UNSUPPORTED_DEFINITION)


class CohortCompiler:
    """Compiles cohort filters against one definitions' cohorts, each cohort once."""

    def __init__(self, cohorts: Mapping[str, Mapping[str, Any]],
                 compile_filter: Callable[[Mapping[str, Any]], Compiled]) -> None:
        self._cohorts = cohorts
        self._compile_filter = compile_filter
        self._compiled: dict[str, Compiled] = {}
        self._compiling: set[str] = set()

    def cohort_filter(self, spec: Mapping[str, Any]) -> Compiled:
        """The filter ``{"type": "cohort", "value": id, "operator": in|not_in|exact}``."""
        cohort_id = str(spec.get("value"))
        if cohort_id not in self._cohorts:
            return Compiled(_needs_server, spec, True)
        operator = spec.get("operator") or "exact"
        if operator not in COHORT_OPERATORS:
            return Compiled(_unsupported, spec, False)
        group = self._cohort(cohort_id)
        if operator != "not_in":
            return Compiled(group.run, spec, group.may_need_server)
        run = group.run
        assert run is not None

        def not_in(props: Properties, identity: bytes, state: State) -> bool:
            return not run(props, identity, state)

        return Compiled(not_in, spec, group.may_need_server)

    def _cohort(self, cohort_id: str) -> Compiled:
        compiled = self._compiled.get(cohort_id)
        if compiled is not None:
            return compiled
        if cohort_id in self._compiling:
            # A cohort inside itself has no answer; the server owns such a definition.
            return Compiled(_needs_server, {}, True)
        self._compiling.add(cohort_id)
        try:
            compiled = self.group(self._cohorts[cohort_id])
        finally:
            self._compiling.discard(cohort_id)
        self._compiled[cohort_id] = compiled
        return compiled

    def group(self, group: Any) -> Compiled:
        """A property group ``{"type": "AND"|"OR", "values": [...]}``; ``{}`` matches."""
        if isinstance(group, Mapping) and group == {}:
            return Compiled(_always_true, {}, False)
        if not isinstance(group, Mapping) or group.get("type") not in ("AND", "OR") \
                or not isinstance(group.get("values"), list):
            return Compiled(_needs_server, {}, True)
        if not group["values"]:
            return Compiled(_always_true, group, False)
        entries: list[Entry] = []
        may_need_server = False
        for entry in group["values"]:
            if not isinstance(entry, Mapping):
                compiled, negate = Compiled(_needs_server, {}, True), False
            elif is_nested_group(entry):
                compiled, negate = self.group(entry), False
            else:
                compiled, negate = self._compile_filter(entry), bool(entry.get("negation", False))
            entries.append((compiled.run, compiled.spec, negate))
            may_need_server = may_need_server or compiled.may_need_server
        return Compiled(_group_run(tuple(entries), group["type"] == "AND", not may_need_server),
                        group, may_need_server)


def _group_run(entries: tuple[Entry, ...], is_and: bool, can_stop: bool) -> Run:
    """The evaluator of one AND/OR group; ``can_stop``: no entry can need the server, so the
    first decisive entry ends it."""

    def run(props: Properties, identity: bytes, state: State) -> bool:
        decisive: bool | None = None
        reason: str | None = None
        for entry_run, spec, negate in entries:
            try:
                if entry_run is None:
                    matched = properties.match_property(
                        spec, props, matching_version=state.matching_version) != negate
                else:
                    matched = entry_run(props, identity, state) != negate
            except Inconclusive as error:
                reason = stronger(reason, error.reason)
                continue
            if matched is not is_and:
                if can_stop:
                    return matched
                decisive = matched
        if decisive is not None:
            return decisive
        if reason is not None:
            raise Inconclusive(reason)
        return is_and

    return run
