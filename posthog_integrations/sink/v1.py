"""The capture v1 intake (``POST /i/v1/analytics/events``): checks, per-event results, answer.

Checked as PostHog checks them: the required headers (``400 missing_required_headers``), a
bearer key (401), the encoding (415), the body (400 ``invalid_batch``, ``empty_batch``) and
each event's uuid (400 ``missing_event_uuid``, ``invalid_event_uuid``,
``duplicate_event_uuid``: the whole request fails). The answer has one result per event,
``ok`` unless a :class:`~posthog_integrations.sink.app.ScriptedResponse` says otherwise, with
``Retry-After: 1`` when any is ``retry``.
"""

from __future__ import annotations

import dataclasses
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

from werkzeug.wrappers import Request, Response

from .api import error_response, json_response
from .body import BadRequest, decode_encoded
from .wire import bearer_key

V1_PATH = "/i/v1/analytics/events"
REQUIRED_HEADERS = ("Content-Type", "User-Agent", "PostHog-Sdk-Info", "PostHog-Attempt",
                    "PostHog-Request-Id", "PostHog-Request-Timestamp")
ENCODINGS = ("", "identity", "gzip", "deflate", "zstd")
# Results that leave the event stored; "drop" and "retry" do not.
NOT_STORED = frozenset({"drop", "retry"})

# Scripted results: positional ("ok", "drop:billing_limit_exceeded", "retry"), the rest "ok";
# or a function of the events returning {uuid: result}. "result:details" adds details.
ScriptedResults = Union[Sequence[str], Callable[[list[dict[str, Any]]], Mapping[str, str]]]


@dataclasses.dataclass
class Intake:
    """A v1 request read: its key and events, or the refusal to answer with."""

    key: str | None = None
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failure: Response | None = None


def _bad(tag: str, detail: str) -> Response:
    return error_response(400, "validation_error", tag, detail)


def read_request(request: Request, raw: bytes) -> Intake:
    """Check a v1 request and read its events (``failure`` set when it is refused)."""
    missing = [name for name in REQUIRED_HEADERS if not request.headers.get(name, "").strip()]
    if missing:
        return Intake(failure=_bad("missing_required_headers",
                                   f"missing required headers: {', '.join(missing)}"))
    if not request.headers["Content-Type"].lower().startswith("application/json"):
        return Intake(failure=error_response(415, "validation_error",
                                             "unsupported_content_type",
                                             "Content-Type must be application/json"))
    key = bearer_key(request.headers.get("Authorization", ""))
    if key is None:
        return Intake(failure=error_response(401, "authentication_error", "invalid_api_token",
                                             "Authorization: Bearer <project API key> needed"))
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS or (encoding == "zstd" and not _zstd_available()):
        return Intake(key, failure=error_response(415, "validation_error",
                                                  "unsupported_encoding",
                                                  f"unsupported Content-Encoding {encoding!r}"))
    try:
        body = decode_encoded(raw, encoding)
    except BadRequest as exc:
        return Intake(key, failure=_bad("request_parsing_error", str(exc)))
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("created_at"), str) or \
            not isinstance(batch, list) or not all(isinstance(e, dict) for e in batch):
        return Intake(key, failure=_bad("invalid_batch", "body must be an object with a "
                                        "'created_at' string and a 'batch' list of objects"))
    if not batch:
        return Intake(key, failure=_bad("empty_batch", "the batch holds no event"))
    seen: set[str] = set()
    for event in batch:
        if event.get("uuid") is None:
            return Intake(key, failure=_bad("missing_event_uuid", "an event has no uuid"))
        try:
            canonical = str(uuid_module.UUID(str(event["uuid"])))
        except ValueError:
            return Intake(key, failure=_bad("invalid_event_uuid",
                                            f"{str(event['uuid'])[:64]!r} is not a UUID"))
        if canonical in seen:
            return Intake(key, failure=_bad("duplicate_event_uuid",
                                            f"uuid {canonical} appears twice"))
        seen.add(canonical)
    return Intake(key, batch)


def results_for(scripted: ScriptedResults | None,
                events: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each event's result, keyed by its canonical uuid: ``ok`` unless scripted."""
    uuids = [str(uuid_module.UUID(str(event["uuid"]))) for event in events]
    if scripted is None:
        chosen = ["ok"] * len(uuids)
    elif callable(scripted):
        by_uuid = scripted(events)
        chosen = [by_uuid.get(uuid, "ok") for uuid in uuids]
    else:
        chosen = [*scripted[:len(uuids)], *["ok"] * (len(uuids) - len(scripted))]
    results: dict[str, dict[str, str]] = {}
    for uuid, text in zip(uuids, chosen):
        result, _, details = text.partition(":")
        results[uuid] = {"result": result, "details": details} if details else {"result": result}
    return results


def stored(events: list[dict[str, Any]],
           results: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """The events whose result keeps them (not ``drop``, not ``retry``)."""
    return [event for event in events
            if results[str(uuid_module.UUID(str(event["uuid"])))]["result"] not in NOT_STORED]


def results_answer(status: int, results: Mapping[str, Mapping[str, str]],
                   retry_after: str | None) -> Response:
    """``{"results": {uuid: {"result": ...}}}``, with ``Retry-After`` (1 unless scripted)
    when any result is ``retry``."""
    headers = None
    if retry_after is not None:
        headers = {"Retry-After": retry_after}
    elif any(entry["result"] == "retry" for entry in results.values()):
        headers = {"Retry-After": "1"}
    return json_response(status, {"results": dict(results)}, headers)


def _zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True
