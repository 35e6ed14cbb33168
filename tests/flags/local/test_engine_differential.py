"""Local evaluation agrees with the official ``posthog`` package's on generated definitions.

Thousands of well-formed definitions (rollouts, variants and overrides, group flags and mixed
targeting, cohorts nested with negation, static cohorts, dependencies and their chains,
holdouts, enrollment, early exit, device bucketing, simple property filters) are evaluated
for several persons each, by this engine and by an official client whose definitions are
injected and which never polls nor sends: the same values, the same payloads, and the same
flags left undecided.
"""

from __future__ import annotations

import functools
import logging
import random
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import Decided, evaluate_locally

posthog = pytest.importorskip("posthog")

FLAG_KEYS = [f"flag-{index}" for index in range(6)]
MAPPING = {"0": "company", "1": "team"}
GROUP_INDEXES = [0, 1, 2]  # 2 is not in the mapping
COHORT_IDS = [1, 2, 3]
STATIC_COHORT = 99
PROPERTY_KEYS = ["plan", "age", "email"]
VARIANT_KEYS = ["control", "test", "third"]

WORDS = ["pro", "Pro", "free", "a@acme.com", "b@example.org", "", "true"]
PERSON_VALUES = st.sampled_from([*WORDS, -3, 0, 7, 18, 40, True, False, None, 2.5])
FILTER_VALUES = {
    "exact": [*WORDS, ["Pro", "team"], ["free"], 7, 18, False], "is_not": ["pro", ["free"], 7],
    None: ["pro", "true"], "icontains": ["acme", "PRO", "o"], "not_icontains": ["acme"],
    "gt": [0, 7, 18, "18"], "lte": [7, 30], "is_set": ["is_set"], "is_not_set": ["is_not_set"],
    "no_such_operator": ["x"],
}
# Every filter is drawn whole from these lists: one draw each keeps thousands of examples fast.


def property_filters(kind: str = "person") -> list[dict[str, Any]]:
    return [{"key": key, "type": kind, "operator": operator, "value": value}
            for key in PROPERTY_KEYS for operator, values in FILTER_VALUES.items()
            for value in values]


def cohort_filters(cohort_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"key": "id", "type": "cohort", "value": cohort_id, "operator": operator}
            for cohort_id in cohort_ids for operator in ("in", "not_in", None)]


@functools.cache
def dependency_filter(parents: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    # dependency_chain is filled in once every flag is drawn (see _with_chains).
    return st.sampled_from([
        {"key": parent, "type": "flag", "operator": operator, "value": value,
         "chain_kind": chain_kind}
        for parent in parents for operator in ["flag_evaluates_to"] * 6 + ["exact"]
        for value in (True, True, False, "control", "test")
        for chain_kind in ["ok"] * 8 + ["cycle", "missing"]])


NESTED = {"nested": True}


@functools.cache
def cohort_entries(cohort_ids: tuple[int, ...], nested: bool) -> st.SearchStrategy[Any]:
    negations: list[dict[str, Any]] = [{}, {}, {"negation": True}, {"negation": False}]
    filters = [{**spec, **negation}
               for spec in (*property_filters(), *cohort_filters(cohort_ids))
               for negation in negations]
    return st.lists(st.sampled_from([*filters, *[NESTED] * (len(filters) // 6 if nested else 0)]),
                    max_size=3)


@st.composite
def cohort_group(draw: st.DrawFn, cohort_ids: tuple[int, ...], depth: int = 0) -> dict[str, Any]:
    entries = [draw(cohort_group(cohort_ids, depth + 1)) if entry is NESTED else dict(entry)
               for entry in draw(cohort_entries(cohort_ids, depth < 2))]
    return {"type": "AND" if draw(st.booleans()) else "OR", "values": entries}


@st.composite
def cohorts(draw: st.DrawFn) -> dict[str, Any]:
    # A cohort refers only to cohorts of smaller ids (the server forbids cycles), or a static one.
    return {str(cohort_id): draw(cohort_group(
        (*(c for c in COHORT_IDS if c < cohort_id), STATIC_COHORT)))
        for cohort_id in COHORT_IDS}


ROLLOUTS = st.one_of(st.none(), st.sampled_from([0, 0.5, 10, 45.5, 50, 100]),
                    st.floats(0, 100, allow_nan=False))


@functools.cache
def condition_filters(index: int, kind: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    choices = [st.sampled_from(property_filters(kind)),
               st.sampled_from(cohort_filters((*COHORT_IDS, STATIC_COHORT)))]
    if index:
        choices.append(dependency_filter((*FLAG_KEYS[:index], "flag-missing")))
    return st.lists(st.one_of(*choices), max_size=3).map(
        lambda specs: [dict(spec) for spec in specs])


@st.composite
def flag(draw: st.DrawFn, index: int) -> dict[str, Any]:
    aggregation = draw(st.sampled_from([None, None, None, 0, 1, 2]))
    kind = "person" if aggregation is None else "group"
    filters = condition_filters(index, kind)
    variants = draw(st.sampled_from([None, [50, 50], [34, 33, 33], [20, 30], [0, 100]]))
    conditions = []
    for _ in range(draw(st.integers(0, 3))):
        condition: dict[str, Any] = {
            "properties": draw(filters),
            "rollout_percentage": draw(ROLLOUTS),
        }
        if draw(st.integers(0, 3)) == 0:
            condition["variant"] = draw(st.sampled_from([None, *VARIANT_KEYS, "bogus"]))
        if draw(st.integers(0, 5)) == 0:
            condition["aggregation_group_type_index"] = draw(
                st.sampled_from([None, *GROUP_INDEXES]))
        conditions.append(condition)
    payload_keys = ["true", "false", *VARIANT_KEYS, "holdout-7"]
    body: dict[str, Any] = {
        "aggregation_group_type_index": aggregation,
        "groups": conditions,
        "payloads": {key: f'{{"for": "{key}"}}' for key in payload_keys if draw(st.booleans())},
        "early_exit": draw(st.booleans()),
    }
    if variants is not None:
        body["multivariate"] = {"variants": [
            {"key": VARIANT_KEYS[position], "rollout_percentage": percentage}
            for position, percentage in enumerate(variants)]}
    if draw(st.integers(0, 5)) == 0:
        body["holdout"] = {"id": 7, "exclusion_percentage": draw(st.sampled_from([0, 20, 50, 100]))}
    if draw(st.integers(0, 9)) == 0:
        body["feature_enrollment"] = True
    result = {
        "id": index, "key": FLAG_KEYS[index], "active": draw(st.integers(0, 9)) > 0,
        "ensure_experience_continuity": draw(st.integers(0, 14)) == 0, "filters": body,
    }
    if draw(st.integers(0, 5)) == 0:
        result["bucketing_identifier"] = "device_id"
    return result


def _depends_on(flag: dict[str, Any]) -> list[str]:
    return [spec["key"] for condition in flag["filters"]["groups"]
            for spec in condition["properties"] if spec.get("type") == "flag"]


def _chain(key: str, flags: dict[str, dict[str, Any]]) -> list[str]:
    """The server's chain for a dependency on ``key``: its ancestors first, ``key`` last."""
    order: list[str] = []

    def visit(current: str) -> None:
        for parent in _depends_on(flags[current]) if current in flags else []:
            visit(parent)
        if current not in order:
            order.append(current)

    visit(key)
    return order


def _with_chains(flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {flag["key"]: flag for flag in flags}
    missing_seen = False
    for flag in flags:
        for condition in flag["filters"]["groups"]:
            for spec in condition["properties"]:
                if spec.get("type") != "flag":
                    continue
                kind = spec.pop("chain_kind")
                chain = _chain(spec["key"], by_key)
                if kind == "missing":
                    chain.insert(0, "flag-missing")
                if "flag-missing" in chain:
                    # Spec §13: a chain member without a definition leaves the filter undecided.
                    # The official evaluator decides a second such filter of one evaluation
                    # (it caches the missing member once), so only one is drawn.
                    kind = "cycle" if missing_seen else kind
                    missing_seen = True
                spec["dependency_chain"] = [] if kind == "cycle" else chain
    return flags


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, len(FLAG_KEYS)))
    flags = _with_chains([draw(flag(index)) for index in range(count)])
    return {"flags": flags, "group_type_mapping": MAPPING, "cohorts": draw(cohorts()),
            "property_matching_version": draw(st.sampled_from([1, 2]))}


PERSON_VALUE_CHOICES = [*WORDS, -3, 0, 7, 18, 40, True, False, None, 2.5]
DISTINCT_IDS = ["user-1", "user-2", "distinct_id_3", "", "Zoë", "42", "a.b"]


def _properties(chooser: random.Random) -> dict[str, Any]:
    return {key: chooser.choice(PERSON_VALUE_CHOICES)
            for key in PROPERTY_KEYS if chooser.random() < 0.6}


def _person(seed: int) -> dict[str, Any]:
    """One person from one drawn number: persons are many, and each cheap to draw."""
    chooser = random.Random(seed)
    groups = {name: chooser.choice(["acme", "globex", "7"])
              for name in ("company", "team") if chooser.random() < 0.6}
    return {
        "distinct_id": chooser.choice(DISTINCT_IDS) if chooser.random() < 0.5
        else f"person-{chooser.randrange(10**6)}",
        "person_properties": _properties(chooser),
        "groups": groups,
        "group_properties": {name: _properties(chooser) for name in groups},
        "device_id": chooser.choice([None, "device-1", "device-2"]),
    }


person = st.integers(0, 2**32).map(_person)


@pytest.fixture(scope="module")
def official() -> Iterator[Any]:
    # A dead host, nothing sent, definitions injected: it never polls (flags are set) and
    # only_evaluate_locally keeps it off the network.
    client = posthog.Posthog("phc_differential", secret_key="phs_unused",
                             host="http://127.0.0.1:9", send=False, poll_interval=3600)
    quiet = logging.getLogger("posthog"), logging.getLogger("posthog_integrations")
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)  # both warn on every malformed dependency drawn
    yield client
    for logger, level in zip(quiet, levels):
        logger.setLevel(level)
    client.shutdown()


def _official_answers(client: Any, data: dict[str, Any], who: dict[str, Any]) -> dict[str, Any]:
    client.feature_flags = data["flags"]
    client.group_type_mapping = data["group_type_mapping"]
    client.cohorts = data["cohorts"]
    client._property_matching_version = data["property_matching_version"]
    return client.get_all_flags_and_payloads(  # type: ignore[no-any-return]
        who["distinct_id"], groups=who["groups"], person_properties=who["person_properties"],
        group_properties=who["group_properties"], device_id=who["device_id"],
        only_evaluate_locally=True)


@settings(max_examples=1500, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=definitions(), people=st.lists(person, min_size=1, max_size=4))
def test_values_and_undecided_flags_agree_with_the_official_evaluator(
        official: Any, data: dict[str, Any], people: list[dict[str, Any]]) -> None:
    parsed = parse_definitions(data)
    for who in people:
        theirs = _official_answers(official, data, who)
        ours = evaluate_locally(parsed, **who)
        decided = {key: result for key, result in ours.items() if isinstance(result, Decided)}
        assert {key: (type(result.value), result.value) for key, result in decided.items()} == \
            {key: (type(value), value) for key, value in theirs["featureFlags"].items()}, who
        assert {key: result.payload for key, result in decided.items()
                if result.payload is not None} == theirs["featureFlagPayloads"]


def test_the_single_flag_getter_agrees_too(official: Any) -> None:
    data = {"flags": [
        {"key": "mv", "active": True, "filters": {
            "groups": [{"properties": [{"key": "email", "type": "person", "operator": "icontains",
                                        "value": "@posthog.com"}], "variant": "test"},
                       {"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50},
                                          {"key": "test", "rollout_percentage": 50}]}}},
        {"key": "needs-email", "active": True, "filters": {"groups": [{"properties": [
            {"key": "email", "type": "person", "operator": "exact", "value": "x"}]}]}},
    ], "group_type_mapping": {}, "cohorts": {}, "property_matching_version": 1}
    _official_answers(official, data, {"distinct_id": "x", "groups": {}, "person_properties": {},
                                       "group_properties": {}, "device_id": None})
    parsed = parse_definitions(data)
    for distinct_id in ("user-a", "user-b", "user-c", "user-d"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            theirs = [official.get_feature_flag(key, distinct_id, only_evaluate_locally=True,
                                                send_feature_flag_events=False)
                      for key in ("mv", "needs-email")]
        ours = evaluate_locally(parsed, ["mv", "needs-email"], distinct_id=distinct_id,
                                groups={}, person_properties={}, group_properties={})
        assert [getattr(result, "value", None) for result in ours.values()] == theirs
