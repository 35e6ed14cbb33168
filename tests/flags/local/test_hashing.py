"""Spec §10 and the §17.1/§17.2 vectors: the rollout, variant and holdout hashes bit for bit."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import Decided, evaluate_locally
from posthog_integrations.feature_flags.local.hashing import (
    LONG_SCALE,
    flag_prefix,
    hash_fraction,
    holdout_fraction,
    rollout_fraction,
    variant_fraction,
)

IDS = [f"distinct_id_{index}" for index in range(1000)]

ROLLOUT_45 = [0.783696, 0.339707, 0.372043, 0.907622, 0.039585,
              0.964085, 0.562270, 0.352011, 0.767823, 0.142544]

MULTIVARIATE = [  # rollout hash, variant hash, value (spec §17.2)
    (0.502038, 0.618645, "second-variant"), (0.318030, 0.647317, "second-variant"),
    (0.356604, 0.063901, "first-variant"), (0.701013, 0.395431, False),
    (0.933119, 0.549291, False), (0.207616, 0.645715, "second-variant"),
    (0.183992, 0.368609, "first-variant"), (0.751749, 0.194761, False),
    (0.989242, 0.645635, False), (0.873172, 0.980122, False),
]


def _values(data: dict[str, Any], key: str, ids: list[str]) -> list[Any]:
    definitions = parse_definitions(data)
    results = [evaluate_locally(definitions, [key], distinct_id=distinct_id, groups={},
                                person_properties={}, group_properties={})[key]
               for distinct_id in ids]
    assert all(isinstance(result, Decided) for result in results)
    return [result.value for result in results]  # type: ignore[union-attr]


def _rollout_flag(key: str, percentage: float) -> dict[str, Any]:
    return {"flags": [{"key": key, "active": True, "filters": {
        "groups": [{"properties": [], "rollout_percentage": percentage}]}}]}


def test_the_worked_example_of_the_spec() -> None:
    digest = hashlib.sha1(b"simple-flag.distinct_id_0").hexdigest()
    assert digest[:15] == "c8a05362b9f414f"
    assert hash_fraction("simple-flag", "distinct_id_0") == int(digest[:15], 16) / LONG_SCALE
    assert round(hash_fraction("simple-flag", "distinct_id_0"), 6) == 0.783696


def test_the_fast_forms_are_the_spec_form() -> None:
    prefix = flag_prefix("a-flag")
    for identifier in ("x", "Zoë", "", "42", "holdout"):
        encoded = identifier.encode()
        assert rollout_fraction(prefix, encoded) == hash_fraction("a-flag", identifier)
        assert variant_fraction(prefix, encoded) == hash_fraction("a-flag", identifier,
                                                                  salt="variant")
        assert holdout_fraction(encoded) == hash_fraction("holdout", identifier, separator="-")
    assert hash_fraction("k", 7) == hash_fraction("k", "7")


def test_45_percent_rollout_vectors() -> None:
    assert [round(hash_fraction("simple-flag", distinct_id), 6)
            for distinct_id in IDS[:10]] == ROLLOUT_45
    values = _values(_rollout_flag("simple-flag", 45), "simple-flag", IDS)
    assert values[:10] == [fraction <= 0.45 for fraction in ROLLOUT_45]
    assert sum(values) == 446


def test_multivariate_vectors() -> None:
    percentages = [("first-variant", 50), ("second-variant", 20), ("third-variant", 20),
                   ("fourth-variant", 5), ("fifth-variant", 5)]
    data = {"flags": [{"key": "multivariate-flag", "active": True, "filters": {
        "groups": [{"properties": [], "rollout_percentage": 55}],
        "multivariate": {"variants": [{"key": key, "rollout_percentage": percentage}
                                      for key, percentage in percentages]}}}]}
    assert [(round(hash_fraction("multivariate-flag", distinct_id), 6),
             round(hash_fraction("multivariate-flag", distinct_id, salt="variant"), 6))
            for distinct_id in IDS[:10]] == [(rollout, variant)
                                             for rollout, variant, _ in MULTIVARIATE]
    assert _values(data, "multivariate-flag", IDS[:10]) == [value for _, _, value in MULTIVARIATE]


def test_a_half_percent_rollout_is_a_float_threshold() -> None:
    # Spec §17.3 gives "9 of 2000, first 367, 368, 766" without naming the flag key; no key
    # reproduces it. For simple-flag, posthog 7.91.1's match_feature_flag_properties picks
    # these ten, as this engine does.
    ids = [f"distinct_id_{index}" for index in range(2000)]
    values = _values(_rollout_flag("simple-flag", 0.5), "simple-flag", ids)
    assert [index for index, value in enumerate(values) if value] == [
        190, 392, 489, 1153, 1360, 1475, 1659, 1668, 1733, 1941]


@pytest.mark.parametrize(("percentage", "expected"), [(0, 0), (100, 1000)])
def test_0_and_100_percent(percentage: float, expected: int) -> None:
    assert sum(_values(_rollout_flag("simple-flag", percentage), "simple-flag", IDS)) == expected


def test_all_1000_ids_agree_with_the_official_hash_and_variant_lookup() -> None:
    feature_flags = pytest.importorskip("posthog.feature_flags")
    variants = [{"key": "a", "rollout_percentage": 33.3}, {"key": "b", "rollout_percentage": 33.3},
                {"key": "c", "rollout_percentage": 33.4}]
    official_flag = {"key": "multivariate-flag",
                     "filters": {"multivariate": {"variants": variants}}}
    data = {"flags": [{**official_flag, "active": True, "filters": {
        "groups": [{"properties": [], "rollout_percentage": 55}],
        "multivariate": {"variants": variants}}}]}
    expected = [
        (feature_flags.get_matching_variant(official_flag, distinct_id) or True)
        if feature_flags._hash("multivariate-flag", distinct_id) <= 0.55 else False
        for distinct_id in IDS]
    assert _values(data, "multivariate-flag", IDS) == expected
