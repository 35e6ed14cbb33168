"""Pure ASGI 3 middleware: one PostHog context per HTTP request or websocket connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Callable

from posthog_integrations.core.off_loop import wait_off_loop
from posthog_integrations.core.options import ConfigurationError, positive_seconds
from posthog_integrations.web import RequestInfo, RequestOptions, RequestTracker
from posthog_integrations.web.options import REQUEST_OPTION_NAMES, reject_unknown
from posthog_integrations.web.request import asgi_path, tracing_ids_from_asgi

from .routes import route_template as _route_template

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from posthog_integrations.core.client import Client
    from posthog_integrations.web.options import RequestSettings

logger = logging.getLogger("posthog_integrations")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_TRACKED = frozenset({"http", "websocket"})
OPTIONS = REQUEST_OPTION_NAMES | {"client", "flush_timeout"}
_LOGGED_ERRORS_MAX = 100
_logged_errors: dict[str, None] = {}  # the latest, oldest first: bounded, and new ones still log
_logged_errors_lock = threading.Lock()


class PostHogMiddleware:
    """Wrap any ASGI 3 app: ``app = PostHogMiddleware(app)`` or ``app.add_middleware(...)``.

    Each ``http`` request and ``websocket`` connection runs in its own context, bound to
    ``client`` (default: the module's default client), with identity and session from the
    ``X-POSTHOG-*`` headers and request tags; the ``identify(scope)`` option, when it finds a
    user (from a token, say), wins over the distinct-id header. Exceptions escaping the app
    are captured once and re-raised unchanged. ``lifespan`` passes through, flushing the
    client at shutdown. Other keyword arguments are
    :class:`~posthog_integrations.web.RequestOptions`.

    A bad option raises :class:`ConfigurationError` naming it, and is logged (once): Starlette
    and FastAPI build middleware on the first lifespan event or request, and retry on every
    request, where the error would otherwise only show as a 500.
    """

    def __init__(self, app: ASGIApp, *, client: Client | None = None,
                 flush_timeout: float = 5.0, **options: Unpack[RequestSettings]) -> None:
        self.app = app
        try:
            reject_unknown(options, OPTIONS, "PostHogMiddleware")
            self._tracker = RequestTracker(client, RequestOptions.build(options),
                                           "asgi.middleware")
            self._flush_timeout = positive_seconds("flush_timeout", flush_timeout)
        except ConfigurationError as error:
            _log_once(str(error))
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._flushing_at_shutdown(send))
            return
        if kind not in _TRACKED:
            await self.app(scope, receive, send)
            return
        response = _ResponseWatcher(send, scope.get("root_path") or "")
        request = self._tracker.open(scope, asgi_path, tracing_ids_from_asgi, response.read_info)
        if request is None:
            await self.app(scope, receive, send)
            return
        response.watch_content_type = (
            request.options.capture_pageviews and scope.get("method") == "GET"
        )
        with request:
            try:
                await self.app(scope, receive, response)
            except Exception as error:
                request.set_route(_route_template(scope, response.root_path))
                request.capture_exception(error, response.status)
                raise
            if response.watch_content_type:
                request.set_route(_route_template(scope, response.root_path))
                request.finish(response.status, response.content_type)

    def _flushing_at_shutdown(self, send: Send) -> Send:
        async def send_after_flush(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                await self._flush()
            await send(message)

        return send_after_flush

    async def _flush(self) -> None:
        """Flush on the async path, so the event loop keeps serving during the bounded wait."""
        try:
            await wait_off_loop(self._tracker.flush, self._flush_timeout)
        except Exception:
            logger.exception("flushing PostHog events at lifespan shutdown failed")


def _log_once(problem: str) -> None:
    """Log a configuration error once, however often the app retries the build (each of the
    latest 100 distinct errors is remembered)."""
    with _logged_errors_lock:
        if problem in _logged_errors:
            return
        if len(_logged_errors) >= _LOGGED_ERRORS_MAX:
            del _logged_errors[next(iter(_logged_errors))]
        _logged_errors[problem] = None
    logger.error("PostHogMiddleware cannot be built: %s (ASGI apps such as Starlette and "
                 "FastAPI build their middleware on the first lifespan event or request, so "
                 "every request fails until it is fixed)", problem)


class _ResponseWatcher:
    """The ``send`` handed to the app: forwards every message, noting the response status.

    It also remembers the ``root_path`` the request arrived with, to describe the request
    later with its route template (routing adds mount prefixes to ``root_path``).
    """

    __slots__ = ("content_type", "root_path", "send", "status", "watch_content_type")

    def __init__(self, send: Send, root_path: str) -> None:
        self.send = send
        self.root_path = root_path
        self.watch_content_type = False
        self.status: int | None = None
        self.content_type: str | None = None

    def read_info(self, scope: Scope) -> RequestInfo:
        """The request, with its route when the router has matched one by now."""
        info = RequestInfo.from_asgi(scope)
        route = _route_template(scope, self.root_path) if "endpoint" in scope else None
        return info._replace(route=route) if route else info

    def __call__(self, message: Message) -> Awaitable[None]:
        # A plain function handing back the server's awaitable: no coroutine of our own per
        # message, which is most of what a pass-through costs.
        if message["type"] == "http.response.start":
            self.status = message.get("status")
            if self.watch_content_type:
                self.content_type = _header(message.get("headers"), b"content-type")
        return self.send(message)


def _header(headers: Iterable[tuple[bytes, bytes]] | None, wanted: bytes) -> str | None:
    for name, value in headers or ():
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None
