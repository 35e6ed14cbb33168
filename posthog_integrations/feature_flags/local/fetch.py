"""One ``GET /flags/definitions`` request and what came of it, as a :class:`Fetched`.

The secret key goes in this request's ``Authorization: Bearer`` header and nowhere else; no
redirect is followed (the transport never follows one), so it cannot be sent on to another
host. Nothing here raises: every failure is a ``"failed"`` outcome whose detail names neither
key. A detail starts with its kind (``timeout``, ``HTTP 500``, ...) and a colon.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from posthog_integrations.core.transport import MAX_MESSAGE_CHARS, NoAnswerInTime, Transport, decode

from .definitions import parse_definitions

DEFINITIONS_PATH = "/flags/definitions"
MAX_DEFINITIONS_BYTES = 16 * 1024 * 1024
UPDATED = "updated"
NOT_MODIFIED = "not_modified"
UNAUTHORIZED = "unauthorized"
QUOTA_LIMITED = "quota_limited"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Fetched:
    """The outcome of one definitions poll.

    ``outcome`` is ``"updated"`` (``data`` holds the new definitions, ``etag`` their ETag),
    ``"not_modified"`` (a 304: ``etag`` is the one to send next time), ``"unauthorized"`` (401),
    ``"quota_limited"`` (402) or ``"failed"``; ``detail`` says what happened, for a log line.
    """

    outcome: str
    data: Mapping[str, Any] | None = None
    etag: str | None = None
    detail: str = ""


def fetch_definitions(transport: Transport, *, project_key: str, secret_key: str,
                      etag: str | None) -> Fetched:
    """Ask ``{host}/flags/definitions`` for the definitions, sending ``etag`` when one is known."""
    headers = {"Authorization": f"Bearer {secret_key}"}
    if etag:
        headers["If-None-Match"] = etag
    path = f"{DEFINITIONS_PATH}?token={quote(project_key, safe='')}&send_cohorts"
    redact = _Redactor(project_key, secret_key)
    try:
        answer = transport.exchange("GET", path, body=None, headers=headers, deadline=None,
                                    max_answer_bytes=MAX_DEFINITIONS_BYTES + 1)
    except Exception as error:
        return Fetched(FAILED, detail=redact(_describe(error)))
    status = answer.status
    if status == 304:
        return Fetched(NOT_MODIFIED, etag=answer.headers.get("ETag") or etag)
    text = redact(decode(answer)[:MAX_MESSAGE_CHARS * 2])[:MAX_MESSAGE_CHARS]
    if status == 401:
        return Fetched(UNAUTHORIZED, detail=f"HTTP 401: {text}")
    if status == 402:
        return Fetched(QUOTA_LIMITED, detail=f"HTTP 402: {text}")
    if 300 <= status < 400:
        where = redact(answer.headers.get("Location", ""))[:MAX_MESSAGE_CHARS] or "elsewhere"
        return Fetched(FAILED, detail=f"redirect: HTTP {status} to {where}; redirects are not "
                                      "followed, so set the host to the address that answers")
    if not 200 <= status < 300:
        return Fetched(FAILED, detail=f"HTTP {status}: {text}")
    return _read(answer.body, answer.headers.get("ETag"))


def _read(body: bytes, etag: str | None) -> Fetched:
    if len(body) > MAX_DEFINITIONS_BYTES:
        return Fetched(FAILED, detail=f"too large: the definitions are over "
                                      f"{MAX_DEFINITIONS_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(body)
    except ValueError:
        return Fetched(FAILED, detail="unreadable answer: not JSON")
    try:
        parse_definitions(data)  # the same reading the poller does: fail here, keep no ETag
    except ValueError as error:
        return Fetched(FAILED, detail=f"unreadable answer: {error}")
    limited = data.get("quotaLimited")
    if isinstance(limited, list) and "feature_flags" in limited:
        return Fetched(FAILED, detail="quota limited: the answer says feature flags are over "
                                      "their quota")
    return Fetched(UPDATED, data=data, etag=etag)


def _describe(error: BaseException) -> str:
    if isinstance(error, (NoAnswerInTime, requests.Timeout)):
        return f"timeout: {error}"
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return f"connection error: {type(error).__name__}: {error}"
    if isinstance(error, (requests.RequestException, OSError)):
        return f"request error: {type(error).__name__}: {error}"
    return f"unexpected error: {type(error).__name__}"


class _Redactor:
    """Replaces both keys, as given and as quoted in the URL, in a text to log."""

    def __init__(self, project_key: str, secret_key: str) -> None:
        pairs = [(secret_key, "<secret key>"), (project_key, "<api key>")]
        self._pairs = [(form, label) for key, label in pairs if key
                       for form in dict.fromkeys((key, quote(key, safe="")))]

    def __call__(self, text: str) -> str:
        for form, label in self._pairs:
            text = text.replace(form, label)
        return text
