"""``POST /flags`` answered by evaluating flag definitions with the library's local engine.

With definitions (``--definitions FILE``) the sink decides each flag for the request's
``distinct_id``, ``person_properties``, ``groups`` and ``group_properties`` as PostHog would
from the same definitions. A flag the engine cannot decide here (a static cohort, experience
continuity, a property the request did not send, ...) is answered as failed with the reason,
since only PostHog could decide it; a key the definitions lack is left out, as PostHog does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from posthog_integrations.feature_flags.local.definitions import FlagDefinitions
from posthog_integrations.feature_flags.local.engine import evaluate_locally
from posthog_integrations.feature_flags.local.errors import (
    EXPERIENCE_CONTINUITY,
    MISSING_CONTEXT,
    UNRESOLVED_DEPENDENCY,
    UNSUPPORTED_DEFINITION,
)
from posthog_integrations.feature_flags.local.results import (
    NOT_IN_DEFINITIONS,
    REQUIRES_SERVER,
    Decided,
)

from .body import BadRequest
from .flags import flags_request

__all__ = ["evaluated_answer"]

WHY_UNDECIDED = {
    EXPERIENCE_CONTINUITY: "experience continuity is on: only PostHog keeps each person's value",
    UNSUPPORTED_DEFINITION: "its definition uses something local evaluation does not support",
    UNRESOLVED_DEPENDENCY: "a flag it depends on cannot be decided here",
    MISSING_CONTEXT: "the request lacks a property, group or device id the flag needs",
    REQUIRES_SERVER: "it needs a static cohort, which only PostHog knows",
}
DECIDED_HERE = "evaluated by the local endpoint from its flag definitions"


def _mapping(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object")
    return value


def evaluated_answer(definitions: FlagDefinitions, body: Any) -> dict[str, Any]:
    """The v2 /flags answer to ``body`` (raises BadRequest or MissingKey as /flags does)."""
    request = flags_request(body)
    group_properties = _mapping(body, "group_properties")
    if not all(isinstance(value, dict) for value in group_properties.values()):
        raise BadRequest("group_properties must map each group type to a JSON object")
    device_id = body.get("device_id")
    results = evaluate_locally(
        definitions, request.keys, distinct_id=request.distinct_id,
        groups=_mapping(body, "groups"), person_properties=_mapping(body, "person_properties"),
        group_properties=group_properties,
        device_id=device_id if isinstance(device_id, str) else None)
    records: dict[str, Any] = {}
    for key, result in results.items():
        if isinstance(result, Decided):
            records[key] = _decided(key, definitions.flags[key], result)
        elif result.reason != NOT_IN_DEFINITIONS:
            records[key] = _failed(key, definitions.flags[key], result.reason)
    return {
        "flags": records,
        "errorsWhileComputingFlags": any(record["failed"] for record in records.values()),
        "requestId": str(uuid.uuid4()),
        "evaluatedAt": int(time.time() * 1000),
    }


def _metadata(flag: Mapping[str, Any], payload: Any) -> dict[str, Any]:
    if payload is not None and not isinstance(payload, str):
        payload = json.dumps(payload, separators=(",", ":"))
    return {"id": flag.get("id"), "version": flag.get("version"), "payload": payload,
            "description": ""}


def _decided(key: str, flag: Mapping[str, Any], result: Decided) -> dict[str, Any]:
    enabled = result.value is not False
    reason = ({"code": "condition_match", "condition_index": None,
               "description": f"On: {DECIDED_HERE}"} if enabled else
              {"code": "no_condition_match", "condition_index": None,
               "description": f"Off: {DECIDED_HERE}"})
    return {"key": key, "enabled": enabled,
            "variant": result.value if isinstance(result.value, str) else None,
            "reason": reason, "metadata": _metadata(flag, result.payload if enabled else None),
            "failed": False}


def _failed(key: str, flag: Mapping[str, Any], reason: str) -> dict[str, Any]:
    why = WHY_UNDECIDED.get(reason, reason)
    return {"key": key, "enabled": False, "variant": None,
            "reason": {"code": "evaluation_failed", "condition_index": None,
                       "description": f"the local endpoint cannot decide this flag: {why}"},
            "metadata": _metadata(flag, None), "failed": True}
