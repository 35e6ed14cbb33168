"""The flag-level algorithm of spec §9 and the §17.3 cases."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import (
    Decided,
    Undecided,
    compile_definitions,
    evaluate_locally,
)
from tests.flags.local.helpers import condition, evaluate, flag, person_filter, value

MV_VARIANTS = {"variants": [{"key": "control", "rollout_percentage": 50},
                            {"key": "test", "rollout_percentage": 50}]}


@pytest.mark.parametrize(("group_key", "expected"), [
    ("acme", True), ("globex", True), ("initech", False), ("umbrella", False), ("hooli", False)])
def test_a_group_flag_buckets_on_the_group_key(group_key: str, expected: bool) -> None:
    group_flag = flag("group-flag", condition(rollout=50), aggregation_group_type_index=0)
    assert value([group_flag], groups={"company": group_key}) is expected


def test_a_group_flag_without_its_group_is_false_and_decided() -> None:
    group_flag = flag("group-flag", condition(rollout=100), aggregation_group_type_index=0)
    assert evaluate([group_flag], groups={"team": "t"})["group-flag"] == Decided(False, None)


def test_a_group_flag_of_an_unmapped_group_type_is_undecided() -> None:
    group_flag = flag("group-flag", condition(rollout=100), aggregation_group_type_index=5)
    assert value([group_flag], groups={"company": "acme"}) == Undecided("unsupported_definition")


def test_a_group_flag_reads_its_group_properties_and_its_key_as_group_key() -> None:
    group_flag = flag("g", condition(person_filter("plan", "exact", "pro", type="group"),
                                     person_filter("$group_key", "exact", "acme", type="group")),
                      aggregation_group_type_index=0)
    inputs: dict[str, Any] = {"groups": {"company": "acme"}, "person_properties": {"plan": "pro"}}
    assert value([group_flag], **inputs) == Undecided("missing_context")
    assert value([group_flag], **inputs, group_properties={"company": {"plan": "pro"}}) is True


@pytest.mark.parametrize(("device_id", "expected"), [
    ("device-1", True), ("device-2", True), ("device-3", True),
    (None, Undecided("missing_context"))])
def test_device_bucketing(device_id: str | None, expected: Any) -> None:
    dev_flag = flag("dev-flag", condition(rollout=50),
                    flag_fields={"bucketing_identifier": "device_id"})
    assert value([dev_flag], device_id=device_id) == expected
    # the identifier may also sit in the filters
    dev_flag_in_filters = flag("dev-flag", condition(rollout=50), bucketing_identifier="device_id")
    assert value([dev_flag_in_filters], device_id=device_id) == expected


def test_a_variant_override_wins_then_the_variant_hash_decides() -> None:
    mv = flag("mv", condition(person_filter("email", "icontains", "@posthog.com"), variant="test"),
              condition(rollout=100), multivariate=MV_VARIANTS,
              payloads={"test": '{"color": "red"}', "control": '{"color": "blue"}'})
    assert evaluate([mv], person_properties={"email": "a@PostHog.com"})["mv"] == \
        Decided("test", '{"color": "red"}')
    for distinct_id, expected in [("user-a", "control"), ("user-b", "control"),
                                  ("user-c", "test"), ("user-d", "test")]:
        assert value([mv], distinct_id=distinct_id, person_properties={"email": "x@y.z"}) \
            == expected


def test_an_override_naming_no_variant_is_ignored_and_short_variants_give_true() -> None:
    bogus = flag("mv", condition(variant="nope"), multivariate=MV_VARIANTS)
    assert value([bogus], distinct_id="user-c") == "test"
    short = {"variants": [{"key": "only", "rollout_percentage": 1}]}
    assert value([flag("mv", condition(), multivariate=short)], distinct_id="user-c") is True


@pytest.mark.parametrize(("early_exit", "expected"), [(False, True), (True, False)])
def test_early_exit(early_exit: bool, expected: bool) -> None:
    flags = [flag("f", condition(person_filter("plan", "exact", ["pro"]), rollout=0),
                  condition(rollout=100), early_exit=early_exit)]
    assert value(flags, person_properties={"plan": "pro"}) is expected


def test_early_exit_after_an_undecided_condition_is_undecided() -> None:
    flags = [flag("f", condition(person_filter("email", "exact", "x")),
                  condition(person_filter("plan", "exact", ["pro"]), rollout=0),
                  condition(rollout=100), early_exit=True)]
    assert value(flags, person_properties={"plan": "pro"}) == Undecided("missing_context")


@pytest.mark.parametrize(("distinct_id", "expected"), [("user-1", "holdout-12"), ("user-2", True)])
def test_holdout_before_any_condition(distinct_id: str, expected: Any) -> None:
    held = flag("f", condition(), holdout={"id": 12, "exclusion_percentage": 20},
                payloads={"holdout-12": "held"})
    result = evaluate([held], distinct_id=distinct_id)["f"]
    assert result == Decided(expected, "held" if expected == "holdout-12" else None)


def test_a_100_percent_holdout_holds_everyone_out_and_a_broken_one_is_ignored() -> None:
    everyone = flag("f", condition(), holdout={"id": 3, "exclusion_percentage": 250})
    assert value([everyone], distinct_id="user-2") == "holdout-3"
    no_id = flag("f", condition(), holdout={"exclusion_percentage": 100})
    assert value([no_id]) is True


@pytest.mark.parametrize(("enrolled", "expected"), [
    (True, True), ("true", True), (False, False), ("yes", False)])
def test_feature_enrollment_reads_the_person_property(enrolled: Any, expected: bool) -> None:
    enrollment = flag("beta", condition(rollout=0), feature_enrollment=True)
    assert value([enrollment], person_properties={"$feature_enrollment/beta": enrolled}) \
        is expected


def test_feature_enrollment_without_the_property_or_on_a_group_flag_is_undecided() -> None:
    assert value([flag("beta", feature_enrollment=True)]) == Undecided("missing_context")
    on_group = flag("beta", feature_enrollment=True, aggregation_group_type_index=0)
    assert value([on_group], groups={"company": "acme"},
                 person_properties={"$feature_enrollment/beta": True}) \
        == Undecided("unsupported_definition")


def test_conditions_in_order_a_later_match_after_an_undecided_one() -> None:
    flags = [flag("f", condition(person_filter("email", "exact", "x")),
                  condition(person_filter("plan", "exact", "pro")))]
    assert value(flags, person_properties={"plan": "pro"}) is True
    assert value(flags, person_properties={"plan": "free"}) == Undecided("missing_context")
    assert value([flag("f")]) is False


def test_the_reason_reported_is_the_worst_among_the_conditions() -> None:
    flags = [flag("f", condition(person_filter("email", "exact", "x")),
                  condition(person_filter("plan", "no_such_operator", "pro")))]
    assert value(flags) == Undecided("unsupported_definition")


def test_inactive_continuity_and_unknown_keys() -> None:
    flags = [{"key": "off", "active": False, "filters": {"payloads": {"false": "p"}}},
             flag("sticky", condition(), flag_fields={"ensure_experience_continuity": True})]
    results = evaluate(flags, ["off", "sticky", "nope"])
    assert results == {"off": Decided(False, "p"), "sticky": Undecided("experience_continuity"),
                       "nope": Undecided("not_in_definitions")}


def test_every_flag_when_no_keys_are_given_and_payloads_by_value() -> None:
    flags = [flag("on", condition(), payloads={"true": '{"a": 1}'}),
             flag("off", condition(rollout=0), payloads={"false": "f"})]
    assert evaluate(flags) == {"on": Decided(True, '{"a": 1}'), "off": Decided(False, "f")}


def test_the_distinct_id_is_a_person_property_unless_given() -> None:
    flags = [flag("f", condition(person_filter("distinct_id", "exact", "user-1")))]
    assert value(flags) is True
    assert value(flags, person_properties={"distinct_id": "someone"}) is False


def test_mixed_targeting_uses_the_conditions_group() -> None:
    mixed = flag("f", condition(person_filter("plan", "exact", "pro", type="group"),
                                aggregation_group_type_index=0),
                 condition(person_filter("plan", "exact", "pro")))
    assert value([mixed], person_properties={"plan": "free"}) is False  # group not passed
    assert value([mixed], groups={"company": "acme"}, person_properties={"plan": "free"},
                 group_properties={"company": {"plan": "pro"}}) is True
    unmapped = flag("f", condition(aggregation_group_type_index=9))
    assert value([unmapped], groups={"company": "acme"}) is False


def test_mixed_targeting_buckets_on_the_group_key() -> None:
    mixed = flag("group-flag", condition(rollout=50, aggregation_group_type_index=0))
    for group_key, expected in [("acme", True), ("initech", False)]:
        assert value([mixed], distinct_id="initech" if expected else "acme",
                     groups={"company": group_key}) is expected


def test_property_matching_version_reaches_the_property_filters() -> None:
    flags = [flag("f", condition(person_filter("fruit", "exact", False)))]
    assert value(flags, person_properties={"fruit": "banana"}) is True
    assert value(flags, person_properties={"fruit": "banana"}, matching_version=2) is False


def test_a_flag_that_cannot_be_read_is_undecided_alone() -> None:
    broken = {"key": "broken", "active": True, "filters": {"groups": ["junk"]}}
    no_percent = flag("mv", condition(), multivariate={"variants": [{"key": "a"}]})
    results = evaluate([broken, no_percent, flag("fine", condition())])
    assert results == {"broken": Undecided("unsupported_definition"),
                       "mv": Undecided("unsupported_definition"), "fine": Decided(True, None)}


def test_a_failure_while_evaluating_is_undecided_and_logged_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from posthog_integrations.feature_flags.local import properties

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise ZeroDivisionError

    monkeypatch.setattr(properties, "match_property", failing)
    definitions = parse_definitions({"flags": [
        flag("f", condition(person_filter("plan", "exact", "pro"))), flag("g", condition())]})
    with caplog.at_level(logging.WARNING, logger="posthog_integrations"):
        for _ in range(3):
            results = evaluate_locally(definitions, distinct_id="u", groups={},
                                       person_properties={"plan": "pro"}, group_properties={})
            assert results == {"f": Undecided("unsupported_definition"),
                               "g": Decided(True, None)}
    assert [record.getMessage() for record in caplog.records] == [
        "feature flag 'f': local evaluation failed (ZeroDivisionError); the server decides it"]


def test_definitions_compile_once_per_object() -> None:
    definitions = parse_definitions({"flags": [flag("f", condition())]})
    assert compile_definitions(definitions) is compile_definitions(definitions)
    assert compile_definitions(parse_definitions({"flags": []})) \
        is not compile_definitions(definitions)
