"""Generic WSGI middleware: the request's context covers the app call, iteration and close()."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from posthog_integrations.web import RequestContext, RequestInfo, RequestOptions, RequestTracker
from posthog_integrations.web.options import REQUEST_OPTION_NAMES, reject_unknown
from posthog_integrations.web.request import tracing_ids_from_wsgi, wsgi_path

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from posthog_integrations.core.client import Client
    from posthog_integrations.web.options import RequestSettings

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
OPTIONS = REQUEST_OPTION_NAMES | {"client"}


class PostHogMiddleware:
    """Wrap any WSGI app: ``app = PostHogMiddleware(app)``.

    Each request runs in its own context, bound to ``client`` (default: the module's default
    client), with identity and session from the ``X-POSTHOG-*`` headers and request tags; the
    ``identify(environ)`` option, when it finds a user, wins over the distinct-id header. The
    context is re-entered while the server iterates and closes the response, so captures in a
    streamed body carry the request's identity. Exceptions escaping the app or its response
    are captured once and re-raised unchanged. Other keyword arguments are
    :class:`~posthog_integrations.web.RequestOptions`.
    """

    source = "wsgi.middleware"  # $exception_source of what escapes the app

    def __init__(self, app: WSGIApp, *, client: Client | None = None,
                 **options: Unpack[RequestSettings]) -> None:
        self.app = app
        reject_unknown(options, OPTIONS, "PostHogMiddleware")
        self._tracker = RequestTracker(client, RequestOptions.build(options), self.source,
                                       self.user_finder())

    def user_finder(self) -> Callable[[Environ], str | None] | None:
        """How a framework built on this finds its logged-in user (none here: the
        ``identify`` option is how an app says who its user is)."""
        return None

    @staticmethod
    def read_info(environ: Environ) -> RequestInfo:
        """Describe the request (frameworks built on this add what they know, e.g. the route)."""
        return RequestInfo.from_wsgi(environ)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = self._tracker.open(environ, wsgi_path, tracing_ids_from_wsgi, self.read_info)
        if request is None:
            return self.app(environ, start_response)
        context = contextvars.copy_context()  # the request's own: the body is pulled in it
        return context.run(self._respond, request, context.run, environ, start_response)

    def _respond(self, request: RequestContext, run: Callable[..., Any], environ: Environ,
                 start_response: StartResponse) -> Iterable[bytes]:
        request.install()
        response = _Response(request, start_response)
        try:
            result = self.app(environ, response.start_response)
            finish = response.finish if request.options.capture_pageviews else None
            if _runs_no_code(result, environ):
                if finish is not None:
                    finish()
                return result  # untouched: servers special-case lists, file wrappers, ...
            return request.iterate(result, run, response.read_status, finish)
        except Exception as error:
            request.capture_exception(error, response.read_status())
            raise


def _runs_no_code(result: object, environ: Environ) -> bool:
    """Whether the server may take ``result`` as it is: nothing of the app runs when it's sent."""
    if isinstance(result, (list, tuple)) or not hasattr(result, "__iter__"):
        return True
    file_wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(file_wrapper, type) and isinstance(result, file_wrapper)


class _Response:
    """What the app answered, from its ``start_response`` call (parsed only when needed)."""

    __slots__ = ("_headers", "_start_response", "_status_line", "request")

    def __init__(self, request: RequestContext, start_response: StartResponse) -> None:
        self.request = request
        self._start_response = start_response
        self._status_line: str | None = None
        self._headers: list[tuple[str, str]] = []

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        self._status_line = status
        self._headers = headers
        if self.request.options.capture_pageviews:
            self.request.read_info_now(self.read_status(), self._content_type())
        return self._start_response(status, headers, exc_info)

    def read_status(self) -> int | None:
        try:
            return int(self._status_line[:3]) if self._status_line else None
        except ValueError:  # malformed: the server will say so; we must not say it first
            return None

    def _content_type(self) -> str | None:
        try:
            return next((value for name, value in self._headers
                         if name.lower() == "content-type"), None)
        except Exception:
            return None

    def finish(self) -> None:
        """The response is complete: its page view, if one is due (inside the context)."""
        self.request.finish(self.read_status(), self._content_type())
