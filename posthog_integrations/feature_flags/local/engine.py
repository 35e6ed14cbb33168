"""Local evaluation of feature flags (spec §9, §10, §14): :func:`evaluate_locally`.

For each flag, in order: inactive → False; experience continuity → undecided; a group flag
reads its group (unmapped type → undecided, group not passed → False) and buckets on the
group key, a person flag on the distinct id or the device id; feature enrollment; holdout;
then the condition groups in their order, first match wins. Definitions are compiled once
(:func:`compile_definitions`, cached by identity) so that evaluating allocates little.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.compiler import (
    ACTIVE,
    CONTINUITY,
    INACTIVE,
    CompiledFlag,
    FlagCompiler,
)
from posthog_integrations.feature_flags.local.definitions import FlagDefinitions
from posthog_integrations.feature_flags.local.dependencies import EVALUATING
from posthog_integrations.feature_flags.local.errors import (
    EXPERIENCE_CONTINUITY,
    MISSING_CONTEXT,
    UNRESOLVED_DEPENDENCY,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
    RequiresServer,
)
from posthog_integrations.feature_flags.local.filters import Properties, State, match_all, stronger
from posthog_integrations.feature_flags.local.hashing import (
    holdout_fraction,
    rollout_fraction,
    variant_fraction,
)
from posthog_integrations.feature_flags.local.results import (
    NOT_IN_DEFINITIONS,
    REQUIRES_SERVER,
    UNDECIDED,
    Decided,
    Result,
    Undecided,
    undecided,
)

__all__ = ["CompiledDefinitions", "Decided", "Undecided", "compile_definitions",
           "evaluate_locally"]

log = logging.getLogger("posthog_integrations")

_NOT_IN_DEFINITIONS = UNDECIDED[NOT_IN_DEFINITIONS]
_REQUIRES_SERVER = UNDECIDED[REQUIRES_SERVER]
_UNSUPPORTED = UNDECIDED[UNSUPPORTED_DEFINITION]
_CONTINUITY = UNDECIDED[EXPERIENCE_CONTINUITY]
_MISSING_CONTEXT = UNDECIDED[MISSING_CONTEXT]
_NO_GROUPS: Mapping[str, Any] = {}


class CompiledDefinitions:
    """One :class:`FlagDefinitions`, compiled; immutable once built, shared by threads."""

    def __init__(self, definitions: FlagDefinitions) -> None:
        compiler = FlagCompiler(definitions.flags, definitions.group_type_mapping,
                                definitions.cohorts)
        self.flags = {key: compiler.flag(key, flag) for key, flag in definitions.flags.items()}
        self.keys = tuple(self.flags)
        self.matching_version = definitions.property_matching_version
        self._failed: set[str] = set()

    def evaluate(self, keys: Iterable[str] | None, distinct_id: str,
                 groups: Mapping[str, Any], person_properties: Properties,
                 group_properties: Mapping[str, Properties],
                 device_id: str | None = None) -> dict[str, Result]:
        """Every flag of ``keys`` (all when None) for one person; see :func:`evaluate_locally`."""
        person = person_properties if "distinct_id" in person_properties \
            else {"distinct_id": distinct_id, **person_properties}
        # Every group passed has its key as the property $group_key, as the server sees it.
        group_props: Mapping[str, Properties] = _NO_GROUPS
        group_keys: Mapping[str, bytes] = _NO_GROUPS
        if groups:
            group_props = {name: {"$group_key": key, **(group_properties.get(name) or {})}
                           for name, key in groups.items()}
            group_keys = {name: str(key).encode() for name, key in groups.items()}
        identity = distinct_id.encode()
        state = State(self.matching_version, device_id.encode() if device_id else None,
                      self._dependency)
        flags = self.flags
        results: dict[str, Result] = {}
        for key in self.keys if keys is None else keys:
            flag = flags.get(key)
            if flag is None:
                results[key] = _NOT_IN_DEFINITIONS
                continue
            if flag.state is not ACTIVE:
                results[key] = flag.false if flag.state is INACTIVE else \
                    _CONTINUITY if flag.state is CONTINUITY else _UNSUPPORTED
                continue
            props = person
            bucketing = flag_identity = identity
            if flag.aggregated:
                name = flag.group_name
                if name is None:
                    results[key] = _UNSUPPORTED
                    continue
                if name not in group_keys:
                    results[key] = flag.false
                    continue
                props = group_props[name]
                bucketing = flag_identity = group_keys[name]
            elif flag.device:
                if state.device is None:
                    results[key] = _MISSING_CONTEXT
                    continue
                bucketing = state.device
            if flag.plain:  # rollouts and variants only: decided here, without a call
                rollout = -1.0
                decided = flag.false
                for condition in flag.conditions:
                    if condition.threshold is not None:
                        if rollout < 0:
                            rollout = rollout_fraction(flag.prefix, bucketing)
                        if rollout > condition.threshold:
                            if flag.early_exit:
                                break
                            continue
                    decided = condition.override or _variant(flag, bucketing)
                    break
                results[key] = decided
                continue
            state.cache = None
            try:
                results[key] = self._match(flag, props, flag_identity, bucketing, state,
                                           group_keys, group_props)
            except Inconclusive as error:
                results[key] = undecided(error.reason)
            except RequiresServer:
                results[key] = _REQUIRES_SERVER
            except Exception as error:
                results[key] = _UNSUPPORTED
                if key not in self._failed:
                    self._failed.add(key)
                    log.warning("feature flag %r: local evaluation failed (%s); the server "
                                "decides it", key, type(error).__name__)
        return results

    def _match(self, flag: CompiledFlag, props: Properties, identity: bytes, bucketing: bytes,
               state: State, group_keys: Mapping[str, bytes] | None,
               group_props: Mapping[str, Properties]) -> Decided:
        """The flag's value past the checks on its state and group (spec §9 steps 5-9);
        ``group_keys`` (each group's bucketing bytes by name) is None when evaluated as a
        dependency, where no other group is known."""
        if flag.enrollment_key is not None:
            if flag.aggregated:
                raise Inconclusive(UNSUPPORTED_DEFINITION)
            if flag.enrollment_key not in props:
                raise Inconclusive(MISSING_CONTEXT)
            enrolled = props[flag.enrollment_key]
            return flag.true if enrolled is True or enrolled == "true" else flag.false
        holdout = flag.holdout
        if holdout is not None and (holdout.everyone
                                    or holdout_fraction(bucketing) <= holdout.threshold):
            return holdout.decided
        reason: str | None = None
        rollout = -1.0
        for condition in flag.conditions:
            condition_props, condition_bucketing = props, bucketing
            if condition.mixed:
                name = condition.group_name
                if group_keys is None or name is None or name not in group_keys:
                    continue
                condition_props = group_props[name]
                condition_bucketing = group_keys[name]
            if condition.filters:
                try:
                    if condition.property is not None:  # the one filter, a property
                        if not properties.match_property(condition.property, condition_props,
                                                         matching_version=state.matching_version):
                            continue
                    elif not match_all(condition.filters, condition_props, identity, state):
                        continue
                except Inconclusive as error:
                    reason = stronger(reason, error.reason)
                    continue
            if condition.threshold is not None:
                if condition_bucketing is bucketing:
                    if rollout < 0:
                        rollout = rollout_fraction(flag.prefix, bucketing)
                    fraction = rollout
                else:
                    fraction = rollout_fraction(flag.prefix, condition_bucketing)
                if fraction > condition.threshold:
                    if flag.early_exit:
                        break
                    continue
            return condition.override or _variant(flag, condition_bucketing)
        if reason is not None:
            raise Inconclusive(reason)
        return flag.false

    def _dependency(self, key: str, props: Properties, identity: bytes, state: State) -> None:
        """Evaluate the flag ``key`` that another depends on, into ``state.cache``."""
        cache = state.cache
        assert cache is not None
        flag = self.flags[key]
        if flag.state is INACTIVE:
            cache[key] = False
            return
        if flag.state is CONTINUITY:
            cache[key] = None
            raise Inconclusive(UNRESOLVED_DEPENDENCY)
        if flag.state is not ACTIVE:
            raise RequiresServer(UNRESOLVED_DEPENDENCY)
        cache[key] = EVALUATING
        try:
            bucketing = identity
            if flag.device and not flag.aggregated:
                if state.device is None:
                    raise Inconclusive(MISSING_CONTEXT)
                bucketing = state.device
            cache[key] = self._match(flag, props, identity, bucketing, state, None,
                                     _NO_GROUPS).value
        except Inconclusive:
            cache[key] = None
            raise Inconclusive(UNRESOLVED_DEPENDENCY) from None
        except RequiresServer:
            del cache[key]
            raise RequiresServer(UNRESOLVED_DEPENDENCY) from None
        except BaseException:
            del cache[key]
            raise


def _variant(flag: CompiledFlag, bucketing: bytes) -> Decided:
    """A matched flag's value: its variant for ``bucketing`` (spec §10.2), else True."""
    if flag.variants:
        position = variant_fraction(flag.prefix, bucketing)
        for low, high, variant in flag.variants:
            if low <= position < high:
                return variant
    return flag.true


_compiled: dict[int, tuple[FlagDefinitions, CompiledDefinitions]] = {}
_compiled_lock = threading.Lock()
_KEEP_COMPILED = 8


def compile_definitions(definitions: FlagDefinitions) -> CompiledDefinitions:
    """``definitions`` compiled, once per object (the last few are kept)."""
    entry = _compiled.get(id(definitions))
    if entry is not None and entry[0] is definitions:
        return entry[1]
    compiled = CompiledDefinitions(definitions)
    with _compiled_lock:
        while len(_compiled) >= _KEEP_COMPILED:
            del _compiled[next(iter(_compiled))]
        _compiled[id(definitions)] = (definitions, compiled)
    return compiled


def evaluate_locally(definitions: FlagDefinitions, keys: Iterable[str] | None = None, *,
                     distinct_id: str, groups: Mapping[str, Any],
                     person_properties: Properties, group_properties: Mapping[str, Properties],
                     device_id: str | None = None) -> dict[str, Result]:
    """Each flag of ``keys`` (every flag of ``definitions`` when None): its
    :class:`Decided` value and payload, or :class:`Undecided` and why.

    ``groups`` maps group type names to the keys the person belongs to; ``group_properties``
    the properties of those groups; ``person_properties`` gets ``distinct_id`` when it has none.
    A key absent from the definitions is ``Undecided("not_in_definitions")``.
    """
    return compile_definitions(definitions).evaluate(
        keys, distinct_id, groups, person_properties, group_properties, device_id)
