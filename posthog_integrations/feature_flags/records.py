"""Parsing a ``/flags`` answer, in any of its shapes, into one normalised record per flag.

Three shapes arrive: v2 records (``flags`` entries without ``value``), v4 typed records
(``flags`` entries with ``value``) and the legacy ``featureFlags``/``featureFlagPayloads`` maps.
A record that cannot be read fails alone: it reads as "no value" with ``unknown_error``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Union

FlagValue = Union[bool, str]
UNKNOWN_ERROR = "unknown_error"
EVALUATION_FAILED = "evaluation_failed"
LOCAL_EVALUATION_INCONCLUSIVE = "local_evaluation_inconclusive"


@dataclasses.dataclass(frozen=True)
class FlagRecord:
    """One flag as the server evaluated it. ``value`` is None when the record failed."""

    key: str
    value: FlagValue | None
    payload: Any = None  # as received: usually a JSON-encoded string
    reason: str | None = None
    flag_id: int | None = None
    version: int | None = None
    has_experiment: bool | None = None
    error: str | None = None  # evaluation_failed, unknown_error or local_evaluation_inconclusive
    local: bool = False  # decided by local evaluation, not by the server


@dataclasses.dataclass(frozen=True)
class FlagResponse:
    """A whole ``/flags`` answer, normalised."""

    records: Mapping[str, FlagRecord]
    quota_limited: bool = False
    errors_while_computing: bool = False
    request_id: str | None = None
    evaluated_at: int | None = None


class UnreadableResponse(ValueError):
    """The answer is not a JSON object (its content is never echoed: it is the server's)."""


def parse_flags_response(body: bytes) -> FlagResponse:
    """Normalise a ``/flags`` answer body; :class:`UnreadableResponse` when it is not an object."""
    try:
        data = json.loads(body)
    except ValueError:
        raise UnreadableResponse("the /flags answer is not JSON") from None
    if not isinstance(data, dict):
        raise UnreadableResponse("the /flags answer is not a JSON object")
    records: dict[str, FlagRecord] = {}
    flags = data.get("flags")
    if isinstance(flags, dict):
        for key, raw in flags.items():
            if isinstance(key, str):
                records[key] = _parse_record(key, raw)
    else:
        records = _parse_legacy(data.get("featureFlags"), data.get("featureFlagPayloads"))
    quota = data.get("quotaLimited")
    request_id = data.get("requestId")
    return FlagResponse(
        records=records,
        quota_limited=isinstance(quota, list) and "feature_flags" in quota,
        errors_while_computing=data.get("errorsWhileComputingFlags") is True,
        request_id=request_id if isinstance(request_id, str) else None,
        evaluated_at=_integer(data.get("evaluatedAt")),
    )


def _parse_legacy(values: Any, payloads: Any) -> dict[str, FlagRecord]:
    if not isinstance(values, dict):
        return {}
    payloads = payloads if isinstance(payloads, dict) else {}
    records = {}
    for key, value in values.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, (bool, str)):
            records[key] = FlagRecord(key, value, payloads.get(key))
        else:
            records[key] = FlagRecord(key, None, error=UNKNOWN_ERROR)
    return records


def _parse_record(key: str, raw: Any) -> FlagRecord:
    try:
        return _read_record(key, raw)
    except (TypeError, ValueError):
        return FlagRecord(key, None, error=UNKNOWN_ERROR)


def _read_record(key: str, raw: Any) -> FlagRecord:
    if not isinstance(raw, dict):
        raise TypeError("a flag record must be an object")
    metadata = _optional_mapping(raw.get("metadata"))
    reason = _optional_mapping(raw.get("reason"))
    description = reason.get("description")
    has_experiment = metadata.get("has_experiment")
    base = FlagRecord(
        key, None,
        reason=description if isinstance(description, str) and description else None,
        flag_id=_known_integer(metadata.get("id")),
        version=_known_integer(metadata.get("version")),
        has_experiment=has_experiment if isinstance(has_experiment, bool) else None,
    )
    if raw.get("failed") is True:
        return dataclasses.replace(base, error=EVALUATION_FAILED)
    if "value" in raw:
        value, payload = _typed_value(raw["value"], metadata.get("payload"))
        return dataclasses.replace(base, value=value, payload=payload)
    variant = raw.get("variant")
    enabled = raw.get("enabled")
    if variant is not None and not isinstance(variant, str):
        raise TypeError("variant must be a string")
    if not isinstance(enabled, bool):
        raise TypeError("enabled must be a bool")
    return dataclasses.replace(base, value=variant if variant is not None else enabled,
                               payload=metadata.get("payload"))


def _typed_value(value: Any, payload: Any) -> tuple[FlagValue, Any]:
    """A v4 ``value`` as (value, payload): numbers and objects mean enabled, carrying themselves."""
    if value is None or value is False:
        return False, payload
    if value is True or isinstance(value, str):
        return value, payload
    if isinstance(value, (int, float, dict, list)):
        return True, json.dumps(value, separators=(",", ":"))
    raise TypeError("value has an unknown type")


def _optional_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _known_integer(value: Any) -> int | None:
    """An integer field: absent or null is None, a wrong type fails the record."""
    if value is None:
        return None
    number = _integer(value)
    if number is None:
        raise TypeError("expected an integer")
    return number


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
