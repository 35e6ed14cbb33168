"""Each flag of a definitions compiled once: everything evaluation can know before the input.

Percentages become thresholds, the variant table its float bounds, group type indexes their
names, cohorts and dependencies functions, and every answer a flag can give (value and
payload) one shared :class:`Decided`. A flag whose body cannot be read compiles as broken:
local evaluation leaves it to the server.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Callable, NamedTuple

from posthog_integrations.feature_flags.local import dependencies, hashing
from posthog_integrations.feature_flags.local.cohorts import CohortCompiler
from posthog_integrations.feature_flags.local.filters import Compiled, Filters
from posthog_integrations.feature_flags.local.results import Decided

ACTIVE, INACTIVE, CONTINUITY, BROKEN = range(4)


class Holdout(NamedTuple):
    everyone: bool
    threshold: float
    decided: Decided


class Condition:
    """One condition group. ``mixed``: it targets another group type than its flag (its
    group's name in ``group_name``, None when the project has no such type); ``property``:
    its only filter when that is a property filter (matched with no loop around it)."""

    __slots__ = ("filters", "group_name", "mixed", "override", "property", "threshold")

    def __init__(self, filters: Filters, threshold: float | None, override: Decided | None,
                 mixed: bool, group_name: str | None) -> None:
        self.filters = filters
        self.property = filters[0][1] if len(filters) == 1 and filters[0][0] is None else None
        self.threshold = threshold
        self.override = override
        self.mixed = mixed
        self.group_name = group_name


class CompiledFlag:
    """One flag, ready to evaluate. ``aggregated``: a group flag (``group_name`` None when its
    group type index is not in the project's mapping)."""

    __slots__ = ("aggregated", "conditions", "device", "early_exit", "enrollment_key", "false",
                 "group_name", "holdout", "key", "plain", "prefix", "state", "true", "variants")

    def __init__(self, key: str, state: int) -> None:
        self.key = key
        self.state = state
        self.prefix = hashing.flag_prefix(key)
        self.aggregated = False
        self.group_name: str | None = None
        self.device = False
        self.enrollment_key: str | None = None
        self.holdout: Holdout | None = None
        self.conditions: tuple[Condition, ...] = ()
        self.early_exit = False
        self.variants: tuple[tuple[float, float, Decided], ...] = ()
        self.plain = False
        """No enrollment, no holdout, no filter and no other group in any condition."""
        self.false = Decided(False, None)
        self.true = Decided(True, None)


class FlagCompiler:
    """Compiles the flags of one definitions, sharing the compiled cohorts between them."""

    def __init__(self, flag_keys: Collection[str], group_type_mapping: Mapping[str, str],
                 cohorts: Mapping[str, Mapping[str, Any]]) -> None:
        self._defined = flag_keys
        self._mapping = group_type_mapping
        self._cohorts = CohortCompiler(cohorts, self.filter)

    def filter(self, spec: Mapping[str, Any]) -> Compiled:
        """One filter of a condition or a cohort: property, cohort or flag dependency."""
        if not isinstance(spec, Mapping):
            raise TypeError("a filter is not an object")
        kind = spec.get("type")
        if kind == "cohort":
            return self._cohorts.cohort_filter(spec)
        if kind == "flag":
            return dependencies.compile_dependency(spec, self._defined)
        return Compiled(None, spec)

    def flag(self, key: str, flag: Mapping[str, Any]) -> CompiledFlag:
        """The compiled ``flag``; broken when its body cannot be read."""
        if not flag.get("active"):
            inactive = CompiledFlag(key, INACTIVE)
            payloads = (flag.get("filters") or {}).get("payloads")
            if isinstance(payloads, Mapping):
                inactive.false = Decided(False, payloads.get("false"))
            return inactive
        if flag.get("ensure_experience_continuity"):
            return CompiledFlag(key, CONTINUITY)
        compiled = CompiledFlag(key, ACTIVE)
        try:
            self._fill(compiled, flag)
        except Exception:
            return CompiledFlag(key, BROKEN)
        return compiled

    def _fill(self, compiled: CompiledFlag, flag: Mapping[str, Any]) -> None:
        filters = flag.get("filters") or {}
        payloads = filters.get("payloads") or {}
        if not isinstance(payloads, Mapping):
            raise TypeError("payloads are not an object")

        def decided(value: bool | str) -> Decided:
            lookup = str(value).lower() if isinstance(value, bool) else str(value)
            return Decided(value, payloads.get(lookup))

        compiled.true, compiled.false = decided(True), decided(False)
        aggregation = filters.get("aggregation_group_type_index")
        compiled.aggregated = aggregation is not None
        if compiled.aggregated:
            compiled.group_name = self._mapping.get(str(aggregation)) or None
        identifier = flag.get("bucketing_identifier") or filters.get("bucketing_identifier")
        compiled.device = identifier == "device_id"
        if filters.get("feature_enrollment") is True:
            compiled.enrollment_key = f"$feature_enrollment/{compiled.key}"
        compiled.holdout = _holdout(filters.get("holdout"), decided)
        variants = (filters.get("multivariate") or {}).get("variants") or []
        compiled.variants = _variant_table(variants, decided)
        variant_keys = [variant["key"] for variant in variants]
        compiled.early_exit = bool(filters.get("early_exit"))
        compiled.conditions = tuple(
            self._condition(condition, aggregation, variant_keys, decided)
            for condition in filters.get("groups") or [])
        compiled.plain = compiled.enrollment_key is None and compiled.holdout is None and all(
            not condition.filters and not condition.mixed for condition in compiled.conditions)

    def _condition(self, condition: Mapping[str, Any], flag_aggregation: Any,
                   variant_keys: list[Any], decided: Callable[[Any], Decided]) -> Condition:
        rollout = condition.get("rollout_percentage")
        threshold = None if rollout is None else rollout / 100
        if threshold is not None and threshold >= 1.0:
            threshold = None  # a hash is at most 1.0: everyone is in, no need to hash
        override = condition.get("variant")
        own = condition.get("aggregation_group_type_index", flag_aggregation)
        mixed = own != flag_aggregation and own is not None
        filters = tuple((compiled.run, compiled.spec) for compiled in (
            self.filter(spec) for spec in condition.get("properties") or []))
        return Condition(
            filters, threshold,
            decided(override) if override and override in variant_keys else None,
            mixed, self._mapping.get(str(own)) or None if mixed else None)


def _holdout(holdout: Any, decided: Callable[[Any], Decided]) -> Holdout | None:
    if not holdout:
        return None
    percentage, holdout_id = holdout.get("exclusion_percentage"), holdout.get("id")
    if percentage is None or holdout_id is None:
        return None
    percentage = min(max(float(percentage), 0.0), 100.0)
    return Holdout(percentage == 100.0, percentage / 100, decided(f"holdout-{holdout_id}"))


def _variant_table(variants: list[Any], decided: Callable[[Any], Decided],
                   ) -> tuple[tuple[float, float, Decided], ...]:
    # The bounds accumulate in list order with float additions, exactly as the server's.
    table = []
    low: float = 0
    for variant in variants:
        high = low + variant["rollout_percentage"] / 100
        table.append((low, high, decided(variant["key"] or True)))
        low = high
    return tuple(table)
