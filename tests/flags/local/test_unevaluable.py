"""The flags local evaluation can never decide, and why (for the check command)."""

from __future__ import annotations

from typing import Any

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.unevaluable import unevaluable
from tests.flags.local.helpers import condition, flag, person_filter

PLAN = person_filter("plan", "exact", "pro")


def cohort(cohort_id: Any, operator: str = "in") -> dict[str, Any]:
    return {"key": "id", "type": "cohort", "value": cohort_id, "operator": operator}


def on(parent: str, chain: list[str] | None = None) -> dict[str, Any]:
    return {"key": parent, "type": "flag", "operator": "flag_evaluates_to", "value": True,
            "dependency_chain": [parent] if chain is None else chain}


def classify(*flags: dict[str, Any], cohorts: dict[str, Any] | None = None) -> dict[str, str]:
    return unevaluable(parse_definitions({
        "flags": list(flags), "group_type_mapping": {"0": "company"}, "cohorts": cohorts or {}}))


def test_each_cause_is_named_for_the_user() -> None:
    found = classify(
        flag("sticky", condition(), flag_fields={"ensure_experience_continuity": True}),
        flag("unmapped", condition(), aggregation_group_type_index=4),
        flag("static", condition(PLAN), condition(cohort(7))),
        flag("cohort-op", condition(cohort(1, "is_not"))),
        flag("bad-cohort", condition(cohort(2))),
        flag("operator", condition(person_filter("plan", "resembles", "pro"))),
        flag("cycle", condition(on("static", chain=[]))),
        flag("missing", condition(on("gone", chain=["gone"]))),
        flag("no-chain", condition({**on("static"), "dependency_chain": None})),
        flag("parent-sticky", condition(on("sticky"))),
        flag("broken", condition(), multivariate={"variants": [{"key": "x"}]}),
        flag("group-enrollment", feature_enrollment=True, aggregation_group_type_index=0),
        cohorts={"1": {"type": "AND", "values": []},
                 "2": {"type": "OR", "values": [{"type": "AND", "values": [cohort(8)]}]}},
    )
    assert found == {
        "sticky": "experience continuity is on: only PostHog keeps each person's value stable",
        "unmapped": "it is aggregated by group type 4, which the project does not define",
        "static": "it uses cohort 7, a static cohort: only PostHog knows its members",
        "cohort-op": "it uses cohort 1 with the operator 'is_not', which local evaluation "
                     "does not support",
        "bad-cohort": "it uses cohort 8, a static cohort: only PostHog knows its members",
        "operator": "its filter on property 'plan' (operator 'resembles', value 'pro') is not "
                    "supported by local evaluation",
        "cycle": "it depends on flag 'static' in a cycle",
        "missing": "it depends on flag 'gone', which is not in the definitions",
        "no-chain": "its dependency chain is missing",
        "parent-sticky": "it depends on flag 'sticky', which cannot be evaluated locally "
                         "(experience continuity is on: only PostHog keeps each person's value "
                         "stable)",
        "broken": "its definition cannot be read",
        "group-enrollment": "it is a group flag with feature enrollment, which reads person "
                            "properties",
    }


def test_flags_decided_locally_whatever_the_input_are_not_listed() -> None:
    found = classify(
        {"key": "off", "active": False, "ensure_experience_continuity": True, "filters": {}},
        flag("fine", condition(PLAN, cohort(1, "not_in"), rollout=30), condition(on("off"))),
        flag("after-everyone", condition(rollout=100), condition(cohort(7))),
        flag("held-out", condition(cohort(7)), holdout={"id": 1, "exclusion_percentage": 100}),
        flag("enrollment", condition(cohort(7)), feature_enrollment=True),
        flag("malformed-dependency", condition({**on("gone"), "operator": "exact"})),
        flag("device", condition(), bucketing_identifier="device_id"),
        cohorts={"1": {"type": "OR", "values": [PLAN, {"type": "AND", "values": [
            {**person_filter("age", "gte", 18), "negation": True}]}]}},
    )
    assert found == {}


def test_an_unannounced_dependency_cycle_is_named() -> None:
    found = classify(flag("a", condition(on("b"))), flag("b", condition(on("a"))))
    assert set(found) == {"a", "b"}
    assert "in a cycle" in found["a"]
