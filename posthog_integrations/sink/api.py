"""The viewer page and the JSON API behind it: read the stored events, or clear them."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from werkzeug.wrappers import Request, Response

from .query import InvalidQuery, api_query
from .store import EventStore
from .wire import public_event

__all__ = ["clear_events", "error_response", "json_response", "list_events", "viewer_page"]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, mimetype="application/json"
    )


def error_response(status: int, kind: str, code: str, detail: str) -> Response:
    return json_response(status, {"type": kind, "code": code, "detail": detail})


def list_events(store: EventStore, request: Request) -> Response:
    """Stored events, newest first, as ``{"events": [...], "cursor": n, "dropped": n}``.

    Pass the answer's ``cursor`` back as ``after`` to get only the events stored since;
    ``dropped`` counts the oldest events deleted to keep the store within its limit.
    """
    try:
        query = api_query(request)
    except InvalidQuery as exc:
        return error_response(400, "validation_error", exc.code, exc.detail)
    records = store.records(
        event=query.event,
        distinct_id=query.distinct_id,
        session_id=query.session_id,
        limit=query.limit,
        newest_first=True,
        after=query.after or None,
    )
    cursor = records[0].seq if records else query.after
    events = [public_event(r.event) for r in records]
    return json_response(200, {"events": events, "cursor": cursor, "dropped": store.dropped()})


def clear_events(store: EventStore, request: Request) -> Response:
    """Delete every stored event; answers ``{"cleared": n}``, the number deleted.

    Sequence numbers keep growing, so a viewer's cursor stays valid.
    """
    if request.args:
        return error_response(
            400, "validation_error", "unknown_parameter", "DELETE /api/events takes no parameters"
        )
    return json_response(200, {"cleared": store.clear()})


def viewer_page() -> Response:
    page, policy = _viewer_page()
    headers = {"Content-Security-Policy": policy, "Cache-Control": "no-store"}
    return Response(page, headers=headers, mimetype="text/html")


@cache
def _viewer_page() -> tuple[bytes, str]:
    """The viewer's HTML and a Content-Security-Policy that runs only its own inline script."""
    page = resources.files("posthog_integrations.sink").joinpath("viewer.html").read_text("utf-8")
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline';"
        " img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )
    return page.encode(), policy
