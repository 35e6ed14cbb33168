"""HTTP delivery of one batch, and the pure policy deciding whether and when to retry it."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import email.utils
import encodings.idna  # noqa: F401
import gzip as gzip_module
import json
import netrc  # noqa: F401
import random
import time
from collections.abc import Mapping

import requests

from posthog_integrations._version import VERSION

from .cutoff import Cutoff, CutoffAdapter
from .events import LIB_NAME, utc_now

# netrc and encodings.idna are imported here, in the importing thread, because requests and
# socket otherwise import them on the first request, in the sender thread. A fork() in the middle
# of that import leaves the module's import lock held in the child by a thread that does not
# exist there, and the child's sender deadlocks on its first request.

BATCH_PATH = "/batch/"
USER_AGENT = f"{LIB_NAME}/{VERSION}"
MAX_BACKOFF = 30.0
MAX_ANSWER_BYTES = 4096  # of an answer's body: PostHog's are tiny, an error page need not be
MAX_MESSAGE_CHARS = 200
_RETRYABLE_4XX = frozenset({408, 429})


class APIError(Exception):
    """The capture endpoint answered with a status other than 2xx.

    A redirect (3xx) is one of them: it is never followed, and ``location`` says where it
    pointed.
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None,
                 location: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.location = location


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer of any status: its status, its headers, the start of its body."""

    status: int
    headers: Mapping[str, str]  # names compared without case
    body: bytes


class NoAnswerInTime(requests.Timeout):
    """The request was cut off: no complete answer arrived within its time."""


class _NoRedirectSession(requests.Session):
    """A session that follows no redirect, whatever a request asks for.

    Following one would turn a POST into a bodyless GET that looks delivered (301, 302), or
    re-post the API key and the events to wherever the answer points (307, 308).
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class Transport:
    """Every request the library makes: to ``{host}``, over one session (one per process).

    No request follows a redirect, each is cut off once ``timeout`` (or the caller's deadline,
    when sooner) has passed from connecting to the last byte of the answer, and at most
    4 KiB of an answer's body is read unless the caller asks for a larger bound.
    """

    def __init__(self, host: str, api_key: str, *, timeout: float, gzip: bool) -> None:
        self.host = host
        self._api_key = api_key
        self._timeout = timeout
        self._gzip = gzip
        self._session = _NoRedirectSession()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, CutoffAdapter())
        self._session.headers.update({"User-Agent": USER_AGENT, "Content-Type": "application/json"})

    def post(self, encoded_events: list[bytes], *, historical_migration: bool,
             deadline: float | None = None) -> None:
        """Send one batch; raise :class:`APIError` or a ``requests`` error when it fails."""
        body = self._body(encoded_events, historical_migration)
        headers = None
        if self._gzip:
            body = gzip_module.compress(body, compresslevel=6)
            headers = {"Content-Encoding": "gzip"}
        self.send("POST", BATCH_PATH, body=body, headers=headers, deadline=deadline)

    def send(self, method: str, path: str, *, body: bytes | None,
             headers: dict[str, str] | None, deadline: float | None,
             max_answer_bytes: int = MAX_ANSWER_BYTES) -> bytes:
        """Make one request to ``{host}{path}``; return the start of a 2xx answer's body.

        At most ``max_answer_bytes`` of the body are read (4 KiB unless a caller expecting a
        larger answer, such as ``/flags``, asks for more).

        Raises :class:`APIError` for any other status, :class:`NoAnswerInTime` when the answer
        was not complete in time, or another ``requests`` error.
        """
        answer = self.exchange(method, path, body=body, headers=headers, deadline=deadline,
                               max_answer_bytes=max_answer_bytes)
        if 200 <= answer.status < 300:
            return answer.body
        raise self._error(answer)

    def exchange(self, method: str, path: str, *, body: bytes | None,
                 headers: dict[str, str] | None, deadline: float | None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> Answer:
        """:meth:`send`, but any status is returned rather than raised (a caller that tells a
        304 from a 401, say); a redirect is still never followed.

        Raises :class:`NoAnswerInTime` or another ``requests`` error when no answer came.
        """
        seconds = self._timeout
        if deadline is not None:
            seconds = min(seconds, deadline - time.monotonic())
            if seconds <= 0:
                raise NoAnswerInTime("no time was left for the request")
        with Cutoff(seconds) as cutoff:
            try:
                response = self._session.request(
                    method, self.host + path, data=body, headers=headers, timeout=seconds,
                    allow_redirects=False, stream=True,
                )
                try:
                    content = _read_at_most(response, max_answer_bytes)
                finally:
                    response.close()
            except Exception as error:
                if cutoff.fired:
                    raise NoAnswerInTime(f"no complete answer within {seconds:.3g}s") from error
                raise
        return Answer(response.status_code, response.headers, content)

    def close(self) -> None:
        self._session.close()

    def failure(self, answer: Answer) -> APIError:
        """The error a non-2xx ``answer`` stands for (key redacted, redirect explained)."""
        return self._error(answer)

    def _error(self, answer: Answer) -> APIError:
        status = answer.status
        if 300 <= status < 400:
            location = self._redact(answer.headers.get("Location", ""))[:MAX_MESSAGE_CHARS]
            where = location or "an address it did not give"
            message = (f"{self.host} redirects to {where}; redirects are not followed, so set "
                       "the host to the address that answers")
            return APIError(status, message, location=location or None)
        # Redact before cutting: a cut key would no longer match the whole key.
        text = self._redact(decode(answer))
        return APIError(status, text[:MAX_MESSAGE_CHARS],
                        parse_retry_after(answer.headers.get("Retry-After")))

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


def decode(answer: Answer) -> str:
    """The answer's body as text, in the charset its Content-Type names (UTF-8 when none)."""
    encoding = requests.utils.get_encoding_from_headers(answer.headers) or "utf-8"
    try:
        return answer.body.decode(encoding, errors="replace")
    except LookupError:  # the answer named an encoding Python does not know
        return answer.body.decode("utf-8", errors="replace")


def _read_at_most(response: requests.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body; the rest is never read (closing drops the connection)."""
    chunks: list[bytes] = []
    size = 0
    # Small reads for the small answers most requests get; larger ones for a large bound.
    for chunk in response.iter_content(chunk_size=1024 if limit <= 65536 else 65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


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
