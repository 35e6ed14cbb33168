"""Local flag evaluation, ours vs the official evaluator, on the same definitions.

``python -m bench.local_evaluation`` prints µs per call (best of several timeit repeats) for
one flag and for a 50-flag snapshot of realistic flags: rollouts, person property filters,
multivariate flags with payloads, group flags, a dynamic cohort, dependencies, holdouts and an
inactive flag, all decided locally for the person below.
"""

from __future__ import annotations

import logging
import timeit
import warnings
from typing import Any

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import Decided, evaluate_locally

PERSON: dict[str, Any] = {
    "distinct_id": "user-3f2a9c",
    "person_properties": {"email": "ada@acme.com", "plan": "pro", "country": "GB",
                          "signup_count": 12},
    "groups": {"company": "acme"},
    "group_properties": {"company": {"tier": "enterprise", "seats": 40}},
}
ONE_FLAG = "release-with-email-0"
RELEASED = 12
"""In the second snapshot, 12 of the 19 plain rollouts are fully released."""


def _person(key: str, operator: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": "person", "operator": operator, "value": value}


def _flag(key: str, groups: list[dict[str, Any]], **filters: Any) -> dict[str, Any]:
    return {"id": len(key), "key": key, "active": True, "version": 3,
            "ensure_experience_continuity": False, "filters": {"groups": groups, **filters}}


def realistic_definitions(released: int = 0) -> dict[str, Any]:
    """A definitions answer of 50 flags shaped like a project's; ``released`` of its 19 plain
    rollouts are at 100 % (features shipped, flag kept), the others partial."""
    variants = {"variants": [{"key": "control", "rollout_percentage": 50},
                             {"key": "test", "rollout_percentage": 50}]}
    flags = [_flag(f"rollout-{index}", [{"properties": [], "rollout_percentage":
                                         100 if index < released else 10 + 4 * index}])
             for index in range(19)]
    flags += [_flag(f"release-with-email-{index}", [
        {"properties": [_person("email", "icontains", "@acme.com")], "rollout_percentage": 100},
        {"properties": [], "rollout_percentage": 20}]) for index in range(6)]
    flags += [_flag(f"plan-and-country-{index}", [{"properties": [
        _person("plan", "exact", ["pro", "team"]), _person("country", "is_not", "FR")],
        "rollout_percentage": 50}]) for index in range(6)]
    flags += [_flag(f"experiment-{index}", [{"properties": [], "rollout_percentage": 80}],
                    multivariate=variants,
                    payloads={"control": '{"color": "blue"}', "test": '{"color": "red"}'})
              for index in range(8)]
    flags += [_flag(f"company-{index}", [{"properties": [
        {"key": "tier", "type": "group", "operator": "exact", "value": "enterprise",
         "group_type_index": 0}], "rollout_percentage": 100}],
        aggregation_group_type_index=0) for index in range(4)]
    flags += [_flag(f"cohort-{index}", [{"properties": [
        {"key": "id", "type": "cohort", "value": 42}], "rollout_percentage": 100}])
        for index in range(3)]
    flags += [_flag(f"depends-{index}", [{"properties": [
        {"key": "rollout-18", "type": "flag", "operator": "flag_evaluates_to", "value": True,
         "dependency_chain": ["rollout-18"]}]}]) for index in range(2)]
    flags += [_flag("holdout-experiment", [{"properties": [], "rollout_percentage": 100}],
                    multivariate=variants, holdout={"id": 5, "exclusion_percentage": 10})]
    flags += [{**_flag("retired", []), "active": False}]
    cohorts = {"42": {"type": "OR", "values": [{"type": "AND", "values": [
        _person("signup_count", "gte", 10), _person("plan", "exact", ["pro"])]}]}}
    return {"flags": flags, "group_type_mapping": {"0": "company"}, "cohorts": cohorts,
            "property_matching_version": 1}


def official_client(data: dict[str, Any]) -> Any:
    import posthog

    client = posthog.Posthog("phc_bench", secret_key="phs_unused", host="http://127.0.0.1:9",
                             send=False, poll_interval=3600)
    client.feature_flags = data["flags"]
    client.group_type_mapping = data["group_type_mapping"]
    client.cohorts = data["cohorts"]
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    return client


def _best_us(call: Any, number: int) -> float:
    # Many short repeats: on a busy machine the best of them is the one least interrupted.
    return min(timeit.repeat(call, number=max(number // 20, 1), repeat=60)) / max(
        number // 20, 1) * 1e6


def _snapshot_us(data: dict[str, Any]) -> tuple[float, float]:
    definitions = parse_definitions(data)
    ours = evaluate_locally(definitions, **PERSON)
    if len(ours) != 50 or not all(isinstance(result, Decided) for result in ours.values()):
        raise RuntimeError(f"every flag should be decided locally: {ours}")
    client = official_client(data)
    theirs = client.get_all_flags_and_payloads(**PERSON, only_evaluate_locally=True)
    if theirs["featureFlags"] != {key: getattr(result, "value", None)
                                  for key, result in ours.items()}:
        raise RuntimeError("the official evaluator disagrees on the bench definitions")
    try:
        return (_best_us(lambda: evaluate_locally(definitions, **PERSON), 2_000),
                _best_us(lambda: client.get_all_flags_and_payloads(
                    **PERSON, only_evaluate_locally=True), 200))
    finally:
        client.shutdown()


def measure() -> dict[str, float]:
    """µs per call: ours and official, one flag and the two 50-flag snapshots."""
    data = realistic_definitions()
    definitions = parse_definitions(data)
    client = official_client(data)
    warnings.simplefilter("ignore", DeprecationWarning)  # get_feature_flag is deprecated

    def official_one() -> Any:
        return client.get_feature_flag(ONE_FLAG, PERSON["distinct_id"],
                                       person_properties=PERSON["person_properties"],
                                       groups=PERSON["groups"],
                                       group_properties=PERSON["group_properties"],
                                       only_evaluate_locally=True,
                                       send_feature_flag_events=False)

    if official_one() is not getattr(evaluate_locally(definitions, [ONE_FLAG], **PERSON)[
            ONE_FLAG], "value", None):
        raise RuntimeError("the official evaluator disagrees on the bench flag")
    results = {
        "ours_1_flag": _best_us(lambda: evaluate_locally(definitions, [ONE_FLAG], **PERSON),
                                20_000),
        "official_1_flag": _best_us(official_one, 2_000),
    }
    client.shutdown()
    results["ours_50_flags"], results["official_50_flags"] = _snapshot_us(data)
    results["ours_50_released"], results["official_50_released"] = _snapshot_us(
        realistic_definitions(RELEASED))
    return results


def main() -> None:
    results = measure()
    for name, micros in results.items():
        print(f"{name:20} {micros:9.2f} µs")
    for row in ("1_flag", "50_flags", "50_released"):
        print(f"{row}: {results['official_' + row] / results['ours_' + row]:.1f}x faster")


if __name__ == "__main__":
    main()
