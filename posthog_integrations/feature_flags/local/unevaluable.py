"""Which flags local evaluation can never decide, and why, in words for the check command.

A flag is listed when its definition alone sends it to PostHog whenever evaluation reaches
the part named: experience continuity, a group type the project does not define, a static
cohort, an operator or value local evaluation does not support, a broken dependency chain.
Each such evaluation costs a billable remote request. Parts evaluation never reaches (the
conditions of an inactive flag, those after a condition everyone matches, a flag everyone is
held out of) are not reported. Inputs the caller may or may not pass (a device id, a
property) are not the definition's fault and are not reported either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.cohorts import COHORT_OPERATORS, is_nested_group
from posthog_integrations.feature_flags.local.compiler import BROKEN
from posthog_integrations.feature_flags.local.definitions import FlagDefinitions
from posthog_integrations.feature_flags.local.dependencies import chain_problem, shape_problem
from posthog_integrations.feature_flags.local.engine import compile_definitions
from posthog_integrations.feature_flags.local.errors import UNSUPPORTED_DEFINITION, Inconclusive


def unevaluable(definitions: FlagDefinitions) -> dict[str, str]:
    """Flag key -> why local evaluation can never decide it, for each such flag."""
    return _Classifier(definitions).all()


class _Classifier:
    def __init__(self, definitions: FlagDefinitions) -> None:
        self._definitions = definitions
        self._compiled = compile_definitions(definitions)
        self._problems: dict[str, str | None] = {}
        self._classifying: set[str] = set()

    def all(self) -> dict[str, str]:
        found = {key: self.flag(key) for key in self._definitions.flags}
        return {key: problem for key, problem in found.items() if problem is not None}

    def flag(self, key: str) -> str | None:
        if key not in self._problems:
            self._classifying.add(key)
            try:
                self._problems[key] = self._flag(key, self._definitions.flags[key])
            finally:
                self._classifying.discard(key)
        return self._problems[key]

    def _flag(self, key: str, flag: Mapping[str, Any]) -> str | None:
        if not flag.get("active"):
            return None
        if flag.get("ensure_experience_continuity"):
            return "experience continuity is on: only PostHog keeps each person's value stable"
        if self._compiled.flags[key].state == BROKEN:
            return "its definition cannot be read"
        filters = flag.get("filters") or {}
        aggregation = filters.get("aggregation_group_type_index")
        if aggregation is not None and not self._definitions.group_type_mapping.get(
                str(aggregation)):
            return (f"it is aggregated by group type {aggregation}, which the project does not "
                    "define")
        if filters.get("feature_enrollment") is True:
            return ("it is a group flag with feature enrollment, which reads person properties"
                    if aggregation is not None else None)
        holdout = filters.get("holdout") or {}
        if holdout.get("id") is not None and holdout.get("exclusion_percentage") is not None \
                and float(holdout["exclusion_percentage"]) >= 100:
            return None
        for condition in filters.get("groups") or []:
            for spec in condition.get("properties") or []:
                problem = self._filter(spec, set())
                if problem is not None:
                    return problem
            rollout = condition.get("rollout_percentage")
            everyone = rollout is None or rollout >= 100
            own = condition.get("aggregation_group_type_index", aggregation)
            if not condition.get("properties") and everyone and (own == aggregation
                                                                 or own is None):
                break  # everyone matches here: later conditions are never reached
        return None

    def _filter(self, spec: Mapping[str, Any], cohorts_seen: set[str]) -> str | None:
        kind = spec.get("type")
        if kind == "cohort":
            return self._cohort(spec, cohorts_seen)
        if kind == "flag":
            return self._dependency(spec)
        try:
            properties.match_property(spec, {},
                                      matching_version=self._definitions.property_matching_version)
        except Inconclusive as error:
            if error.reason == UNSUPPORTED_DEFINITION:
                return (f"its filter on property {spec.get('key')!r} (operator "
                        f"{spec.get('operator') or 'exact'!r}, value {spec.get('value')!r}) "
                        "is not supported by local evaluation")
        return None

    def _cohort(self, spec: Mapping[str, Any], cohorts_seen: set[str]) -> str | None:
        cohort_id = str(spec.get("value"))
        cohort = self._definitions.cohorts.get(cohort_id)
        if cohort is None:
            return f"it uses cohort {cohort_id}, a static cohort: only PostHog knows its members"
        operator = spec.get("operator") or "exact"
        if operator not in COHORT_OPERATORS:
            return (f"it uses cohort {cohort_id} with the operator {operator!r}, which local "
                    "evaluation does not support")
        if cohort_id in cohorts_seen:
            return f"cohort {cohort_id} contains itself"
        return self._group(cohort, cohort_id, cohorts_seen | {cohort_id})

    def _group(self, group: Any, cohort_id: str, cohorts_seen: set[str]) -> str | None:
        if isinstance(group, Mapping) and group == {}:
            return None
        if not isinstance(group, Mapping) or group.get("type") not in ("AND", "OR") \
                or not isinstance(group.get("values"), list):
            return f"cohort {cohort_id} has a definition local evaluation cannot read"
        for entry in group["values"]:
            if not isinstance(entry, Mapping):
                return f"cohort {cohort_id} has a definition local evaluation cannot read"
            problem = (self._group(entry, cohort_id, cohorts_seen) if is_nested_group(entry)
                       else self._filter(entry, cohorts_seen))
            if problem is not None:
                return problem
        return None

    def _dependency(self, spec: Mapping[str, Any]) -> str | None:
        if shape_problem(spec) is not None:
            return None  # a malformed dependency never matches: decided locally
        problem = chain_problem(spec, self._definitions.flags)
        if problem is not None:
            return problem
        for key in spec["dependency_chain"]:
            if key in self._classifying:
                return f"it depends on flag {key!r} in a cycle"
            member = self.flag(key) if self._definitions.flags[key].get("active") else None
            if member is not None:
                return f"it depends on flag {key!r}, which cannot be evaluated locally ({member})"
        return None
