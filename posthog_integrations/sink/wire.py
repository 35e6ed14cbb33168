"""What clients send the sink: batch, list, single-event and v1 bodies, and their API key."""

from __future__ import annotations

from typing import Any

from .body import BadRequest


def key_of(obj: dict[str, Any]) -> str | None:
    """The API key of a body or event: ``api_key``, ``token`` or ``properties.token``."""
    key = obj.get("api_key") or obj.get("token")
    if not key:
        props = obj.get("properties")
        key = props.get("token") if isinstance(props, dict) else None
    return key if isinstance(key, str) and key else None


def _is_event(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("event"), str) and bool(obj["event"])


def split_body(body: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """Return the API key and the events of a batch, list or single-event body."""
    if isinstance(body, list):
        events: Any = body
        key = None
    elif isinstance(body, dict):
        events = body.get("batch", [body])
        key = key_of(body)
    else:
        raise BadRequest("body must be a JSON object or list")
    if not isinstance(events, list) or not all(_is_event(e) for e in events):
        raise BadRequest("every event must be an object with an 'event' name")
    if key is None:
        key = next((k for k in map(key_of, events) if k is not None), None)
    return key, events


def v1_events(body: Any) -> list[dict[str, Any]]:
    """The events of a v1 ``{"created_at": ..., "batch": [...]}`` body."""
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, list) or not all(isinstance(e, dict) for e in batch):
        raise BadRequest("body must be an object with a 'batch' list of objects")
    return batch


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` without the API key, for the HTTP API."""
    out = {k: v for k, v in event.items() if k not in ("api_key", "token")}
    props = out.get("properties")
    if isinstance(props, dict) and "token" in props:
        out["properties"] = {k: v for k, v in props.items() if k != "token"}
    return out


def bearer_key(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header (the v1 endpoint's key)."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
