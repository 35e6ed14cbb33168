"""Flag dependencies (spec §13): chains, variants, cycles, and one evaluation per pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from posthog_integrations.feature_flags.local import properties
from posthog_integrations.feature_flags.local.dependencies import matches_value
from posthog_integrations.feature_flags.local.engine import Undecided
from tests.flags.local.helpers import condition, evaluate, flag, person_filter, value

PARENT = flag("parent", condition(person_filter("plan", "exact", "pro")))
VARIANTS = {"variants": [{"key": "control", "rollout_percentage": 50},
                         {"key": "test", "rollout_percentage": 50}]}


def on(parent: str, expected: Any, chain: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"key": parent, "type": "flag", "operator": "flag_evaluates_to", "value": expected,
            "dependency_chain": [parent] if chain is None else chain, **fields}


@pytest.mark.parametrize(("plan", "child", "child_false"), [("pro", True, False),
                                                            ("free", False, True)])
def test_the_verified_dependencies_of_the_spec(plan: str, child: bool, child_false: bool) -> None:
    flags = [PARENT, flag("child", condition(on("parent", True))),
             flag("child-false", condition(on("parent", False)))]
    results = evaluate(flags, ["child", "child-false"], person_properties={"plan": plan})
    assert [result.value for result in results.values()] == [child, child_false]  # type: ignore[union-attr]


def test_an_empty_chain_is_a_cycle_and_a_wrong_operator_never_matches() -> None:
    assert value([PARENT, flag("child", condition(on("parent", True, chain=[])))], "child") \
        == Undecided("unsupported_definition")
    wrong = on("parent", True, operator="exact")
    assert value([PARENT, flag("child", condition(wrong))], "child",
                 person_properties={"plan": "pro"}) is False


def test_a_chain_member_without_definition_is_undecided() -> None:
    child = flag("child", condition(on("parent", True, chain=["gone", "parent"])), condition())
    assert value([PARENT, child], "child", person_properties={"plan": "pro"}) is True
    alone = flag("child", condition(on("parent", True, chain=["gone", "parent"])))
    assert value([PARENT, alone], "child", person_properties={"plan": "pro"}) \
        == Undecided("unsupported_definition")


def test_an_unannounced_cycle_is_left_to_the_server() -> None:
    a = flag("a", condition(on("b", True)))
    b = flag("b", condition(on("a", True)))
    assert evaluate([a, b]) == {"a": Undecided("requires_server"),
                                "b": Undecided("requires_server")}
    itself = flag("self", condition(on("self", True)))
    assert value([itself]) == Undecided("requires_server")


@pytest.mark.parametrize(("expected", "distinct_id", "matches"), [
    ("test", "user-c", True), ("test", "user-a", False), ("control", "user-a", True),
    (True, "user-a", True), (False, "user-a", False)])
def test_a_variant_parent(expected: Any, distinct_id: str, matches: bool) -> None:
    flags = [flag("mv", condition(), multivariate=VARIANTS),
             flag("child", condition(on("mv", expected)))]
    assert value(flags, "child", distinct_id=distinct_id) is matches


def test_a_chain_evaluates_ancestors_first_and_each_parent_once_per_flag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = properties.match_property

    def counting(spec: Mapping[str, Any], props: Mapping[str, Any], **options: Any) -> bool:
        calls.append(spec["key"])
        return real(spec, props, **options)

    monkeypatch.setattr(properties, "match_property", counting)
    grandparent = flag("grandparent", condition(person_filter("country", "exact", "FR")))
    parent = flag("parent", condition(person_filter("plan", "exact", "pro"),
                                      on("grandparent", True)))
    child = flag("child", condition(on("parent", True, chain=["grandparent", "parent"]),
                                    on("grandparent", True)))
    assert value([grandparent, parent, child], "child",
                 person_properties={"plan": "pro", "country": "FR"}) is True
    assert calls == ["country", "plan"]


def test_inactive_continuity_and_device_parents() -> None:
    inactive = {"key": "parent", "active": False, "filters": {}}
    assert value([inactive, flag("child", condition(on("parent", False)))], "child") is True
    sticky = flag("parent", condition(), flag_fields={"ensure_experience_continuity": True})
    assert value([sticky, flag("child", condition(on("parent", True)))], "child") \
        == Undecided("unresolved_dependency")
    device = flag("parent", condition(), bucketing_identifier="device_id")
    child = flag("child", condition(on("parent", True)))
    assert value([device, child], "child") == Undecided("unresolved_dependency")
    assert value([device, child], "child", device_id="d") is True


def test_a_group_parent_is_bucketed_on_the_identity_being_evaluated() -> None:
    group_parent = flag("group-flag", condition(rollout=50), aggregation_group_type_index=0)
    child = flag("child", condition(on("group-flag", True)))
    # acme is in group-flag's 50 %, initech is not (spec §17.3); no group is passed
    assert value([group_parent, child], "child", distinct_id="acme") is True
    assert value([group_parent, child], "child", distinct_id="initech") is False
    group_child = flag("child", condition(on("group-flag", True)), aggregation_group_type_index=1)
    assert value([group_parent, group_child], "child", distinct_id="initech",
                 groups={"team": "acme"}) is True


@pytest.mark.parametrize(("expected", "actual", "matches"), [
    (True, "v", True), ("v", "v", True), ("V", "v", False), (False, "v", False),
    (True, True, True), (False, False, True), (True, False, False), ("v", True, False),
    (True, "", False), (1, True, False)])
def test_matches_value(expected: Any, actual: Any, matches: bool) -> None:
    assert matches_value(expected, actual) is matches
