"""One remote evaluation: the ``/flags`` request, its retry policy and its error codes.

Retries follow the flags policy, not the event policy: only a 502, a 504 or a request that got
no answer for a transient reason is tried again (a refused connection is not transient), with
a backoff of 0.3 s doubling each time. Every failure becomes an error code for
``$feature_flag_error``; nothing here raises to the caller.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

import requests

from posthog_integrations.core.transport import APIError, NoAnswerInTime, Transport

from .records import FlagResponse, UnreadableResponse, parse_flags_response

FLAGS_PATH = "/flags/?v=2"
MAX_FLAGS_ANSWER_BYTES = 1024 * 1024
RETRY_BASE_DELAY = 0.3
_RETRYABLE_STATUSES = frozenset({502, 504})
_HEADERS = {"Content-Type": "application/json"}


@dataclasses.dataclass(frozen=True)
class FlagsRequest:
    """What one evaluation asks the server about."""

    distinct_id: str
    groups: Mapping[str, Any]
    person_properties: Mapping[str, Any]
    group_properties: Mapping[str, Any]
    disable_geoip: bool
    flag_keys: Sequence[str] | None

    def body(self, token: str) -> bytes:
        fields: dict[str, Any] = {
            "token": token,
            "distinct_id": self.distinct_id,
            "groups": dict(self.groups),
            "group_properties": dict(self.group_properties),
            "person_properties": dict(self.person_properties),
            "geoip_disable": self.disable_geoip,
            "device_id": None,
        }
        if self.flag_keys is not None:
            fields["flag_keys_to_evaluate"] = list(self.flag_keys)
        return json.dumps(fields, separators=(",", ":"), default=str).encode()


@dataclasses.dataclass(frozen=True)
class FlagsFailure:
    """Why an evaluation got no answer: ``code`` for ``$feature_flag_error``, ``detail`` to log."""

    code: str
    detail: str


Outcome = Union[FlagResponse, FlagsFailure]


def fetch_flags(transport: Transport, body: bytes, *, max_retries: int,
                sleep: Callable[[float], Any] = time.sleep) -> Outcome:
    """POST ``body`` to ``/flags``, retrying as the flags policy allows; never raises."""
    attempt = 0
    while True:
        try:
            answer = transport.send("POST", FLAGS_PATH, body=body, headers=_HEADERS,
                                    deadline=None, max_answer_bytes=MAX_FLAGS_ANSWER_BYTES + 1)
            if len(answer) > MAX_FLAGS_ANSWER_BYTES:
                return FlagsFailure("unknown_error", "the /flags answer is larger than 1 MiB")
            return parse_flags_response(answer)
        except Exception as error:
            if attempt >= max_retries or not is_retryable(error):
                return FlagsFailure(error_code(error), describe(error))
            sleep(RETRY_BASE_DELAY * 2**attempt)
            attempt += 1


def is_retryable(error: BaseException) -> bool:
    """A 502 or 504, or no answer for a transient reason (a refused connection is not)."""
    if isinstance(error, APIError):
        return error.status in _RETRYABLE_STATUSES
    if _refused(error):
        return False
    transient = (requests.ConnectionError, requests.Timeout,
                 requests.exceptions.ChunkedEncodingError)
    return isinstance(error, transient)


def error_code(error: BaseException) -> str:
    """The ``$feature_flag_error`` code for a failed request."""
    if isinstance(error, APIError):
        return f"api_error_{error.status}"
    if isinstance(error, (NoAnswerInTime, requests.Timeout)):
        return "timeout"
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return "connection_error"
    return "unknown_error"


def describe(error: BaseException) -> str:
    """A log line's worth about ``error``; never the request body (it holds the API key)."""
    if isinstance(error, (APIError, UnreadableResponse)):
        return str(error)
    if isinstance(error, (requests.RequestException, OSError)):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


def _refused(error: BaseException) -> bool:
    """Whether a refused connection is anywhere behind ``error``.

    ``requests`` wraps urllib3's errors in ``args`` and urllib3 keeps its cause as ``reason``,
    so those are followed as well as ``__cause__`` and ``__context__``.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return False
