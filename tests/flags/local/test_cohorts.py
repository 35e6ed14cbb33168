"""Cohorts (spec §12): nested AND/OR groups, negation, ``not_in``, static cohorts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.engine import Undecided
from tests.flags.local.helpers import condition, flag, person_filter, value

ACME_OR_ADULT_US = {"type": "OR", "values": [
    {"type": "AND", "values": [person_filter("country", "exact", ["US"]),
                               person_filter("age", "gte", 18)]},
    {"type": "AND", "values": [person_filter("email", "icontains", "@acme.com")]},
]}


def cohort_flag(cohort_id: Any = 42, operator: str | None = "in") -> dict[str, Any]:
    return flag("f", condition({"key": "id", "type": "cohort", "value": cohort_id,
                                "operator": operator}))


@pytest.mark.parametrize(("person", "expected"), [
    ({"country": "us", "age": 20}, True),
    ({"country": "US", "age": 16}, Undecided("missing_context")),
    ({"country": "US", "age": 16, "email": "x@acme.com"}, True),
    ({"country": "FR", "age": 30, "email": "x@globex.com"}, False),
])
def test_the_verified_cohort_of_the_spec(person: dict[str, Any], expected: Any) -> None:
    assert value([cohort_flag()], cohorts={"42": ACME_OR_ADULT_US},
                 person_properties=person) == expected


@pytest.mark.parametrize(("person", "expected"), [
    ({"country": "us", "age": 20}, False),
    ({"country": "FR", "age": 30, "email": "x@globex.com"}, True),
    ({"country": "US", "age": 16}, Undecided("missing_context")),
])
def test_not_in_negates_the_cohort(person: dict[str, Any], expected: Any) -> None:
    assert value([cohort_flag(operator="not_in")], cohorts={"42": ACME_OR_ADULT_US},
                 person_properties=person) == expected


@pytest.mark.parametrize(("plan", "banned", "expected"), [
    ("pro", False, True), ("pro", True, False), ("free", False, False)])
def test_negated_entries_and_cohorts_inside_cohorts(plan: str, banned: bool,
                                                    expected: bool) -> None:
    cohorts = {
        "1": {"type": "AND", "values": [person_filter("banned", "exact", ["true"])]},
        "2": {"type": "AND", "values": [
            person_filter("plan", "exact", "free", negation=True),
            {"key": "id", "type": "cohort", "value": 1, "negation": True}]},
    }
    assert value([cohort_flag(2)], cohorts=cohorts,
                 person_properties={"plan": plan, "banned": banned}) is expected


def test_a_static_cohort_needs_the_server_even_after_a_decisive_entry() -> None:
    static = {"key": "id", "type": "cohort", "value": 7}
    assert value([cohort_flag(7)]) == Undecided("requires_server")
    cohorts = {"1": {"type": "OR", "values": [person_filter("plan", "exact", "pro"), static]}}
    assert value([cohort_flag(1)], cohorts=cohorts,
                 person_properties={"plan": "pro"}) == Undecided("requires_server")


def test_a_static_cohort_after_an_undecided_filter_leaves_later_conditions_to_decide() -> None:
    flags = [flag("f", condition(person_filter("email", "exact", "x"),
                                 {"key": "id", "type": "cohort", "value": 7}),
                  condition())]
    assert value(flags) is True
    first = [flag("f", condition({"key": "id", "type": "cohort", "value": 7},
                                 person_filter("email", "exact", "x")), condition())]
    assert value(first) == Undecided("requires_server")


@pytest.mark.parametrize(("group", "expected"), [
    ({}, True), ({"type": "AND", "values": []}, True), ({"type": "OR", "values": []}, True),
    ({"type": "XOR", "values": []}, Undecided("requires_server")),
    ({"type": "AND", "values": "x"}, Undecided("requires_server")),
    ({"type": "AND", "values": ["junk"]}, Undecided("requires_server")),
])
def test_empty_and_malformed_groups(group: dict[str, Any], expected: Any) -> None:
    assert value([cohort_flag()], cohorts={"42": group}) == expected


def test_an_unknown_cohort_operator_and_a_cohort_inside_itself() -> None:
    group = {"type": "AND", "values": []}
    assert value([cohort_flag(operator="is_not")], cohorts={"42": group}) \
        == Undecided("unsupported_definition")
    looped = {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 42}]}
    assert value([cohort_flag()], cohorts={"42": looped}) == Undecided("requires_server")


def test_each_filter_is_one_property_call_and_a_decided_group_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = properties.match_property

    def counting(spec: Mapping[str, Any], props: Mapping[str, Any], **options: Any) -> bool:
        calls.append(spec["key"])
        return real(spec, props, **options)

    monkeypatch.setattr(properties, "match_property", counting)
    cohorts = {"42": {"type": "OR", "values": [person_filter(key, "exact", "y")
                                               for key in ("a", "b", "c")]}}
    assert value([cohort_flag()], cohorts=cohorts, person_properties={"a": "n", "b": "y"}) is True
    assert calls == ["a", "b"]
