"""Small builders shared by the engine's tests."""

from __future__ import annotations

from typing import Any

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import evaluate_locally
from posthog_integrations.feature_flags.local.results import Result


def flag(key: str, *conditions: dict[str, Any], **filters: Any) -> dict[str, Any]:
    """An active flag with ``conditions`` and other ``filters`` fields; ``flag_fields`` (a
    dict) goes to the flag itself."""
    fields = filters.pop("flag_fields", {})
    return {"key": key, "active": True, **fields,
            "filters": {"groups": list(conditions), **filters}}


def condition(*properties: dict[str, Any], rollout: float | None = None,
              **fields: Any) -> dict[str, Any]:
    return {"properties": list(properties), "rollout_percentage": rollout, **fields}


def person_filter(key: str, operator: str, value: Any, **fields: Any) -> dict[str, Any]:
    return {"key": key, "type": "person", "operator": operator, "value": value, **fields}


def evaluate(flags: list[dict[str, Any]], keys: list[str] | None = None, *,
             distinct_id: str = "user-1", groups: dict[str, Any] | None = None,
             person_properties: dict[str, Any] | None = None,
             group_properties: dict[str, dict[str, Any]] | None = None,
             device_id: str | None = None, cohorts: dict[str, Any] | None = None,
             mapping: dict[str, str] | None = None, matching_version: int = 1,
             ) -> dict[str, Result]:
    definitions = parse_definitions({
        "flags": flags, "cohorts": cohorts or {}, "property_matching_version": matching_version,
        "group_type_mapping": {"0": "company", "1": "team"} if mapping is None else mapping})
    return evaluate_locally(definitions, keys, distinct_id=distinct_id, groups=groups or {},
                            person_properties=person_properties or {},
                            group_properties=group_properties or {}, device_id=device_id)


def value(flags: list[dict[str, Any]], key: str | None = None, **inputs: Any) -> Any:
    """The one flag's value, or its Undecided answer."""
    key = key or flags[0]["key"]
    result = evaluate(flags, [key], **inputs)[key]
    return getattr(result, "value", result)
