"""HTTP delivery of one batch, and the pure policy deciding whether and when to retry it."""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import encodings.idna  # noqa: F401
import gzip as gzip_module
import json
import netrc  # noqa: F401
import random

import requests

from posthog_integrations._version import VERSION

from .events import LIB_NAME, utc_now

# netrc and encodings.idna are imported here, in the importing thread, because requests and
# socket otherwise import them on the first request, in the sender thread. A fork() in the middle
# of that import leaves the module's import lock held in the child by a thread that does not
# exist there, and the child's sender deadlocks on its first request.

BATCH_PATH = "/batch/"
USER_AGENT = f"{LIB_NAME}/{VERSION}"
MAX_BACKOFF = 30.0
_RETRYABLE_4XX = frozenset({408, 429})


class APIError(Exception):
    """The capture endpoint answered with a status other than 2xx."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Transport:
    """Posts batches to ``{host}/batch/`` over one ``requests.Session`` (one per process)."""

    def __init__(self, host: str, api_key: str, *, timeout: float, gzip: bool) -> None:
        self.url = host + BATCH_PATH
        self._api_key = api_key
        self._timeout = timeout
        self._gzip = gzip
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Content-Type": "application/json"})

    def post(self, encoded_events: list[bytes], *, historical_migration: bool) -> None:
        """Send one batch; raise :class:`APIError` or a ``requests`` error when it fails."""
        body = self._body(encoded_events, historical_migration)
        headers = None
        if self._gzip:
            body = gzip_module.compress(body, compresslevel=6)
            headers = {"Content-Encoding": "gzip"}
        response = self._session.post(self.url, data=body, headers=headers, timeout=self._timeout)
        if 200 <= response.status_code < 300:
            return
        raise APIError(
            response.status_code,
            self._redact(response.text[:200]),
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def close(self) -> None:
        self._session.close()

    def _body(self, encoded_events: list[bytes], historical_migration: bool) -> bytes:
        head = json.dumps(
            {
                "api_key": self._api_key,
                "historical_migration": historical_migration,
                "sent_at": utc_now(),  # fresh on every attempt: the server corrects clock skew
            },
            separators=(",", ":"),
        )
        return b"".join((head[:-1].encode(), b',"batch":[', b",".join(encoded_events), b"]}"))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "<api key>") if self._api_key else text


def is_retryable(error: BaseException) -> bool:
    """Connection errors, timeouts, 5xx, 408 and 429 are transient; every other 4xx is final.

    A connection broken mid-answer (``ChunkedEncodingError``) is a connection error too.
    """
    if isinstance(error, APIError):
        return error.status >= 500 or error.status in _RETRYABLE_4XX
    broken = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    return isinstance(error, broken)


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential from ``base`` with equal jitter, capped at 30 s; ``Retry-After`` is a floor.
    """
    ceiling = min(MAX_BACKOFF, base * 2.0**attempt)
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    with contextlib.suppress(ValueError):  # not delta-seconds: try an HTTP date
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    remaining: float = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return max(0.0, remaining)
