"""The ``posthog_context`` message header: what of a context travels with a task, and back.

Version 1 is ``{"v": 1, "distinct_id": str | None, "session_id": str | None, "tags": {...}}``.
It is kept under :data:`MAX_HEADER_BYTES` of JSON by leaving tags out, the largest first; a
context with nothing to say (no identity, no session, no tag allowed to travel) sends none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from posthog_integrations.core.context import SESSION_ID, TAGS, Scope, distinct_id_of
from posthog_integrations.core.serialization import make_json_safe
from posthog_integrations.web.scope import describes_request

logger = logging.getLogger("posthog_integrations")

HEADER = "posthog_context"
OPT_OUT = "posthog_propagate"
"""``task.apply_async(..., headers={"posthog_propagate": False})``: nothing travels."""
VERSION = 1
MAX_HEADER_BYTES = 4096
TASK_TAGS = frozenset({"celery_task_name", "celery_task_id", "celery_retry_count"})
"""Set on every task's context by the worker itself: they never travel."""

TagFilter = Callable[[str], bool]


class Built(NamedTuple):
    """A header to send (None: send none), and what had to be left out of it."""

    header: dict[str, Any] | None
    tags_dropped: int = 0
    oversize: bool = False


def default_tag_filter(name: str) -> bool:
    """Every tag but the request-description ones and the task tags travels by default."""
    return not describes_request(name) and name not in TASK_TAGS


def build_header(scope: Scope, allows: TagFilter) -> Built:
    """The header for a task published in ``scope``, with the tags ``allows`` accepts."""
    distinct_id = distinct_id_of(scope)
    session_id = scope[SESSION_ID]
    tags = {name: value for name, value in scope[TAGS].items()
            if type(name) is str and allows(name)}
    if distinct_id is None and session_id is None and not tags:
        return Built(None)
    safe_tags: dict[str, Any] = make_json_safe(tags)
    header = {"v": VERSION, "distinct_id": distinct_id, "session_id": session_id,
              "tags": safe_tags}
    size = _encoded_size(header)
    if size <= MAX_HEADER_BYTES:
        return Built(header)
    # The largest tags go first: an entry costs its own encoding plus a comma.
    entry_sizes = {name: _encoded_size({name: value}) - 1 for name, value in safe_tags.items()}
    dropped = 0
    for name in sorted(entry_sizes, key=entry_sizes.__getitem__, reverse=True):
        del safe_tags[name]
        dropped += 1
        size -= entry_sizes[name]
        if size <= MAX_HEADER_BYTES and _encoded_size(header) <= MAX_HEADER_BYTES:
            return Built(header, tags_dropped=dropped)
    if _encoded_size(header) <= MAX_HEADER_BYTES:
        return Built(header, tags_dropped=dropped)
    return Built(None, oversize=True)


class Received(NamedTuple):
    """What a task's header says about the context it was published in."""

    distinct_id: str | None
    session_id: str | None
    tags: dict[str, Any]


NOTHING = Received(None, None, {})


def read_header(request: Any) -> Any:
    """The raw header of a task's request: a message header is an attribute of the request;
    ``request.headers`` holds the copy made for protocols and brokers that nest them."""
    value = getattr(request, HEADER, None)
    if value is None:
        nested = getattr(request, "headers", None)
        if isinstance(nested, Mapping):
            value = nested.get(HEADER)
    return value


def parse_header(value: Any) -> Received | None:
    """The context a header describes; None when it is not one this version reads."""
    if not isinstance(value, Mapping) or value.get("v") != VERSION:
        return None
    distinct_id, session_id, tags = (value.get("distinct_id"), value.get("session_id"),
                                     value.get("tags"))
    if not (distinct_id is None or isinstance(distinct_id, str)) or \
            not (session_id is None or isinstance(session_id, str)) or \
            not isinstance(tags, Mapping):
        return None
    return Received(distinct_id or None, session_id or None,
                    {name: tag for name, tag in tags.items() if isinstance(name, str)})


def opted_out(headers: Any) -> bool:
    """Whether the publishing call said ``posthog_propagate: False`` in these headers."""
    return isinstance(headers, Mapping) and headers.get(OPT_OUT) is False


def _encoded_size(value: Any) -> int:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))
