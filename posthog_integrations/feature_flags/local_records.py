"""Local evaluation's answers as flag records: what the definitions decide, and what they leave
to the server (spec §14)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from .local.definitions import FlagDefinitions
from .local.engine import evaluate_locally
from .local.results import NOT_IN_DEFINITIONS, Decided
from .records import LOCAL_EVALUATION_INCONCLUSIVE, FlagRecord

logger = logging.getLogger("posthog_integrations")

EVALUATED_LOCALLY = "Evaluated locally"


@dataclasses.dataclass(frozen=True)
class LocalDecision:
    """The flags local evaluation decided, as records, and the keys it could not decide:
    ``inconclusive`` has a definition the engine could not settle (the rest are unknown to it)."""

    records: dict[str, FlagRecord]
    undecided: list[str]
    inconclusive: frozenset[str]

    def with_inconclusive(self) -> dict[str, FlagRecord]:
        """The records, plus a valueless one per inconclusive flag so that reading it reports
        ``local_evaluation_inconclusive`` (when no request will settle it)."""
        records = dict(self.records)
        for key in self.inconclusive:
            records[key] = FlagRecord(key, None, error=LOCAL_EVALUATION_INCONCLUSIVE, local=True)
        return records


def decide_locally(definitions: FlagDefinitions, keys: list[str] | None, *, distinct_id: str,
                   groups: Mapping[str, Any], person_properties: Mapping[str, Any],
                   group_properties: Mapping[str, Any]) -> LocalDecision:
    """Evaluate ``keys`` (every flag when None) from ``definitions``. An unexpected error in
    the engine leaves every flag undecided (the server decides them) and is logged."""
    try:
        results = evaluate_locally(
            definitions, keys, distinct_id=distinct_id, groups=groups,
            person_properties=person_properties,
            group_properties={name: props for name, props in group_properties.items()
                              if isinstance(props, Mapping)})
    except Exception:
        logger.warning("local flag evaluation failed; the server decides the flags",
                       exc_info=True)
        wanted = list(definitions.flags) if keys is None else keys
        return LocalDecision({}, wanted, frozenset())
    records: dict[str, FlagRecord] = {}
    undecided: list[str] = []
    inconclusive: set[str] = set()
    for key, result in results.items():
        if isinstance(result, Decided):
            records[key] = _record(key, result, definitions.flags.get(key))
        else:
            undecided.append(key)
            if result.reason != NOT_IN_DEFINITIONS:
                inconclusive.add(key)
    return LocalDecision(records, undecided, frozenset(inconclusive))


def _record(key: str, decided: Decided, definition: Mapping[str, Any] | None) -> FlagRecord:
    definition = definition or {}
    has_experiment = definition.get("has_experiment")
    return FlagRecord(
        key, decided.value, decided.payload, reason=EVALUATED_LOCALLY,
        flag_id=_integer(definition.get("id")), version=_integer(definition.get("version")),
        has_experiment=has_experiment if isinstance(has_experiment, bool) else None,
        local=True,
    )


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
