"""WSGI application of the local sink: PostHog capture endpoints, scripted answers, recording."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from werkzeug.wrappers import Request, Response

from .api import clear_events, error_response, json_response, list_events, viewer_page
from .body import BadRequest, PayloadTooLarge, decode_body, decode_encoded, read_body
from .definitions import DEFINITIONS_PATH, DefinitionsFile, definitions_answer
from .evaluated import evaluated_answer
from .flags import FlagSource, MissingKey, flags_answer, flags_request
from .guard import cross_site, host_allowed
from .store import EventStore
from .v1 import V1_PATH, ScriptedResults, read_request, results_answer, results_for, stored
from .wire import key_of, split_body, v1_events

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["RecordedRequest", "ScriptedResponse", "SinkApp", "check_respond"]

CAPTURE_PATHS = frozenset({"/batch", "/i/v0/e", "/e", "/capture"})
API_EVENTS_PATH = "/api/events"
FLAGS_PATH = "/flags"
VIEWER_PATHS = frozenset({"/", "/index.html"})
# The newest capture requests kept for requests(), by count and by bytes of raw body.
MAX_RECORDED_REQUESTS = 10_000
MAX_RECORDED_BYTES = 64 << 20
_STAT_NAMES = (
    "flags_requests",
    "definitions_requests",
    "requests_forgotten",
    "refused_host",
    "refused_cross_site",
    "refused_too_large",
)


@dataclass(frozen=True)
class ScriptedResponse:
    """How the sink answers one capture request.

    A 2xx ``status`` still lets the sink answer 400/401 for a malformed request.
    ``hang`` and ``drop_connection`` close the connection without an answer
    (``hang`` only once the sink stops). ``results`` scripts a 2xx v1 answer's per-event
    results: positional (``("ok", "drop:billing_limit_exceeded", "retry")``, the rest ``ok``)
    or a function of the events returning ``{uuid: result}``; ``drop`` and ``retry`` events
    are not stored (see :mod:`posthog_integrations.sink.v1`).
    """

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    hang: bool = False
    drop_connection: bool = False
    body: bytes | None = None
    results: ScriptedResults | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One capture or /flags request as the sink saw it; ``status`` is 0 when none was sent.

    ``raw`` is the body as received; ``body`` and ``events`` are parsed from it on
    first access, so a long run does not keep every parsed event alive.
    """

    path: str
    headers: dict[str, str]
    api_key: str | None
    uuids: list[str]
    gzip: bool
    content_length: int
    status: int
    received_at: float
    query: str
    raw: bytes = field(repr=False)

    @cached_property
    def body(self) -> Any:
        """The parsed JSON body, or None when it could not be decoded."""
        try:
            if self.path.rstrip("/") == V1_PATH:
                return decode_encoded(self.raw, self.headers.get("content-encoding", ""))
            return decode_body(self.raw, self.gzip)
        except BadRequest:
            return None

    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """The events in the body (empty when it was malformed, and for /flags)."""
        path = self.path.rstrip("/")
        if path == FLAGS_PATH:
            return []
        try:
            if path == V1_PATH:
                return v1_events(self.body)
            return split_body(self.body)[1]
        except BadRequest:
            return []


class _Dropped(ConnectionAbortedError):
    """Raised to make werkzeug's server close the connection without a response."""


class SinkApp:
    """The sink's WSGI callable.

    Accepted events go to ``store``; ``on_stored(events, endpoint)`` is called after each add.
    ``/flags`` is answered from ``flags`` (no flags when None), or by evaluating the
    definitions when some were given; ``GET /flags/definitions`` from ``definitions`` (see
    :mod:`posthog_integrations.sink.definitions`). Capture requests are answered ``respond``
    (an error status) when it is given and no scripted answer is queued;
    ``on_responded(status, event_count, endpoint)`` is called for each.
    """

    def __init__(
        self,
        store: EventStore,
        on_stored: Callable[[list[dict[str, Any]], str], None] | None = None,
        *,
        flags: FlagSource | None = None,
        definitions: DefinitionsFile | None = None,
        max_recorded_requests: int = MAX_RECORDED_REQUESTS,
        max_recorded_bytes: int = MAX_RECORDED_BYTES,
        respond: int | None = None,
        on_responded: Callable[[int, int, str], None] | None = None,
    ) -> None:
        check_respond(respond)
        for name, value in (
            ("max_recorded_requests", max_recorded_requests),
            ("max_recorded_bytes", max_recorded_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.store = store
        self.flags = flags if flags is not None else FlagSource()
        self.definitions = definitions if definitions is not None else DefinitionsFile()
        self._on_stored = on_stored
        self._on_responded = on_responded
        self._max_recorded_requests = max_recorded_requests
        self._max_recorded_bytes = max_recorded_bytes
        self._lock = threading.Lock()
        self._script: deque[ScriptedResponse] = deque()
        self._flags_script: deque[ScriptedResponse] = deque()
        self._definitions_script: deque[ScriptedResponse] = deque()
        self._requests: deque[RecordedRequest] = deque()
        self._recorded_bytes = 0
        self._counts: Counter[str] = Counter()
        self._released = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._bound: tuple[str, int] | None = None
        # The answer to capture requests when no scripted answer is queued.
        self._usual = ScriptedResponse() if respond is None else ScriptedResponse(respond)

    # -- control, used by the server -------------------------------------------------

    def script(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next capture requests (an int is a bare status)."""
        with self._lock:
            self._script.extend(map(_scripted, responses))

    def script_flags(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next /flags requests (an int is a bare status).

        A scripted 2xx without a ``body`` answers from the flags as usual.
        """
        with self._lock:
            self._flags_script.extend(map(_scripted, responses))

    def script_definitions(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next /flags/definitions requests (an int is a bare status).

        A scripted 2xx without a ``body`` answers from the definitions as usual.
        """
        with self._lock:
            self._definitions_script.extend(map(_scripted, responses))

    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded capture and /flags requests, oldest first (the newest kept)."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, int]:
        """/flags requests, requests forgotten to stay bounded, and requests refused by reason."""
        with self._lock:
            return {name: self._counts[name] for name in _STAT_NAMES}

    def clear(self) -> None:
        """Forget recorded requests, pending scripted answers and the :meth:`stats` counts."""
        with self._lock:
            self._script.clear()
            self._flags_script.clear()
            self._definitions_script.clear()
            self._requests.clear()
            self._recorded_bytes = 0
            self._counts.clear()

    def _count_refused(self, reason: str) -> None:
        with self._lock:
            self._counts[f"refused_{reason}"] += 1

    def _record(self, recorded: RecordedRequest) -> None:
        """Keep ``recorded``, forgetting the oldest requests beyond the count and byte limits."""
        with self._lock:
            self._requests.append(recorded)
            self._recorded_bytes += len(recorded.raw)
            while self._requests and (
                len(self._requests) > self._max_recorded_requests
                or self._recorded_bytes > self._max_recorded_bytes
            ):
                forgotten = self._requests.popleft()
                self._recorded_bytes -= len(forgotten.raw)
                self._counts["requests_forgotten"] += 1

    def release(self) -> None:
        """Wake every delayed or hanging request; they close their connection unanswered."""
        self._released.set()

    def resume(self) -> None:
        """Undo :meth:`release` (for a restarted server)."""
        self._released.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self._in_flight += 1
        try:
            response = self._dispatch(Request(environ))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        return response(environ, start_response)

    def serve_at(self, host: str, port: int) -> None:
        """Accept requests whose Host header names ``host``:``port`` (see :func:`host_allowed`).

        Until this is called every request is refused.
        """
        self._bound = (host, port)

    def _refusal(self, request: Request) -> Response | None:
        """The answer to a request from a rebinding page or another site, else None."""
        # Browsers always send Host; a request without one cannot come from a page.
        host = request.environ.get("HTTP_HOST")
        if host is not None and (self._bound is None or not host_allowed(host, *self._bound)):
            self._count_refused("host")
            return error_response(
                421,
                "validation_error",
                "host_not_allowed",
                "the Host header must name this sink: 127.0.0.1, localhost or [::1] (or the"
                " address it listens on) with its port",
            )
        origin, fetch_site = request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")
        if cross_site(request.method, host or "", origin, fetch_site):
            self._count_refused("cross_site")
            return error_response(
                403,
                "forbidden",
                "cross_site_request",
                "the sink refuses browser requests from other sites' pages",
            )
        return None

    def _dispatch(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        path = request.path.rstrip("/") or "/"
        if request.method == "POST" and path in CAPTURE_PATHS:
            return self._capture(request, v1=False)
        if request.method == "POST" and path == V1_PATH:
            return self._capture(request, v1=True)
        if request.method == "POST" and path == FLAGS_PATH:
            return self._flags(request)
        if request.method == "GET" and path == DEFINITIONS_PATH:
            return self._definitions(request)
        if request.method == "GET" and path == API_EVENTS_PATH:
            return list_events(self.store, request)
        if request.method == "DELETE" and path == API_EVENTS_PATH:
            return clear_events(self.store, request)
        if request.method == "GET" and path in VIEWER_PATHS:
            return viewer_page()
        return error_response(404, "not_found", "not_found", "no such endpoint")

    def _capture(self, request: Request, *, v1: bool) -> Response:
        received_at = time.monotonic()
        compressed = _compressed(request)
        key: str | None = None
        events: list[dict[str, Any]] = []
        failure: Response | None = None
        raw = b""
        try:
            raw = read_body(request)
            if v1:
                intake = read_request(request, raw)
                key, events, failure = intake.key, intake.events, intake.failure
            else:
                key, events = split_body(decode_body(raw, compressed))
            if key is None and failure is None:
                failure = error_response(
                    401, "authentication_error", "invalid_api_key", "no API key"
                )
        except BadRequest as exc:
            failure = error_response(400, "validation_error", "invalid_payload", str(exc))
        except PayloadTooLarge as exc:
            # Refused before scripted answers and recording: nothing of it is kept.
            self._count_refused("too_large")
            return error_response(413, "validation_error", "payload_too_large", str(exc))

        with self._lock:
            plan = self._script.popleft() if self._script else self._usual
        failure, status = _outcome(plan, failure)
        uuids = [e["uuid"] for e in events if isinstance(e.get("uuid"), str)]
        self._record(_recorded(request, key, uuids, compressed, raw, status, received_at))
        self._carry_out(plan, request)
        if failure is not None:
            return failure
        if plan is self._usual and not _ok(status) and self._on_responded is not None:
            self._on_responded(status, len(events), request.path)
        results = results_for(plan.results, events) if v1 and _ok(status) else None
        kept = stored(events, results) if results is not None else events
        if _ok(status) and kept and key is not None:
            self.store.add(kept, api_key=key, endpoint=request.path)
            if self._on_stored is not None:
                self._on_stored(kept, request.path)
        if results is not None and plan.body is None:
            return results_answer(plan.status, results, plan.retry_after)
        return self._answer(plan)

    def _carry_out(self, plan: ScriptedResponse, request: Request) -> None:
        """Wait, hang or drop the connection as ``plan`` says."""
        if plan.hang:
            self._released.wait()
            _drop(request)
        if plan.delay > 0 and self._released.wait(plan.delay):
            _drop(request)  # the sink is stopping
        if plan.drop_connection:
            _drop(request)

    def _flags(self, request: Request) -> Response:
        """Answer a /flags request in the v2 shape from the current flags."""
        received_at = time.monotonic()
        compressed = _compressed(request)
        raw = b""
        key: str | None = None
        failure: Response | None = None
        answer: dict[str, Any] | None = None
        try:
            raw = read_body(request)
            body = decode_body(raw, compressed)
            key = key_of(body) if isinstance(body, dict) else None
            # Flags given too stand for what only PostHog knows (static cohorts, say).
            if self.definitions.given and not self.flags.given:
                answer = evaluated_answer(self.definitions.current().definitions, body)
            else:
                answer = flags_answer(self.flags.current(), flags_request(body))
        except BadRequest as exc:
            failure = error_response(400, "validation_error", "invalid_payload", str(exc))
        except MissingKey as exc:
            failure = error_response(401, "authentication_error", "invalid_api_key", str(exc))
        except PayloadTooLarge as exc:
            self._count_refused("too_large")
            return error_response(413, "validation_error", "payload_too_large", str(exc))

        with self._lock:
            self._counts["flags_requests"] += 1
            plan = self._flags_script.popleft() if self._flags_script else ScriptedResponse()
        failure, status = _outcome(plan, failure)
        self._record(_recorded(request, key, [], compressed, raw, status, received_at))
        self._carry_out(plan, request)
        if failure is not None:
            return failure
        if plan.body is not None or not _ok(plan.status) or answer is None:
            return self._answer(plan)
        return json_response(plan.status, answer, _retry_after(plan))

    def _definitions(self, request: Request) -> Response:
        """Answer GET /flags/definitions from the definitions, or as scripted."""
        received_at = time.monotonic()
        answer = definitions_answer(request, self.definitions.current())
        with self._lock:
            self._counts["definitions_requests"] += 1
            queued = self._definitions_script
            plan = queued.popleft() if queued else ScriptedResponse()
        # As for /flags: a scripted 2xx does not hide a request without its keys.
        scripted = not _ok(plan.status) or (plan.body is not None and answer.status_code != 401)
        status = plan.status if scripted else answer.status_code
        self._record(_recorded(request, request.args.get("token"), [], False, b"",
                               0 if plan.hang or plan.drop_connection else status, received_at))
        self._carry_out(plan, request)
        return self._answer(plan) if scripted else answer

    def _answer(self, plan: ScriptedResponse) -> Response:
        headers = _retry_after(plan)
        if plan.body is not None:
            return Response(plan.body, status=plan.status, headers=headers)
        if not 200 <= plan.status < 300:
            detail = f"the sink was told to answer {plan.status}"
            return json_response(plan.status, {"error": detail, "detail": detail}, headers)
        return json_response(plan.status, {"status": 1}, headers)


def check_respond(respond: int | None) -> None:
    """Raise ValueError unless ``respond`` is None or an HTTP error status (400 to 599)."""
    if respond is not None and not 400 <= respond <= 599:
        raise ValueError(f"respond must be an HTTP status from 400 to 599, not {respond}")


def _scripted(response: ScriptedResponse | int) -> ScriptedResponse:
    return response if isinstance(response, ScriptedResponse) else ScriptedResponse(response)


def _retry_after(plan: ScriptedResponse) -> dict[str, str] | None:
    return {"Retry-After": plan.retry_after} if plan.retry_after is not None else None


def _compressed(request: Request) -> bool:
    return request.headers.get("Content-Encoding", "").lower() == "gzip" or (
        request.args.get("compression", "") in ("gzip", "gzip-js")
    )


def _recorded(
    request: Request,
    key: str | None,
    uuids: list[str],
    compressed: bool,
    raw: bytes,
    status: int,
    received_at: float,
) -> RecordedRequest:
    return RecordedRequest(
        path=request.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        api_key=key,
        uuids=uuids,
        gzip=compressed,
        content_length=len(raw),
        status=status,
        received_at=received_at,
        query=request.query_string.decode("latin-1"),
        raw=raw,
    )


def _outcome(plan: ScriptedResponse, failure: Response | None) -> tuple[Response | None, int]:
    """The refusal that still stands, and the status recorded (0: no answer is sent).

    A scripted 2xx does not hide a malformed request; any other scripted status wins over it.
    """
    if failure is not None and not _ok(plan.status):
        failure = None
    if plan.hang or plan.drop_connection:
        return failure, 0
    return failure, plan.status if failure is None else failure.status_code


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _drop(request: Request) -> NoReturn:
    """Close the client's connection without answering (werkzeug's server ignores the error)."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise _Dropped("connection dropped by the sink")
