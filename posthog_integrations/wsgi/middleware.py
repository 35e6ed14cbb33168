"""Generic WSGI middleware: the request's context covers the app call, iteration and close()."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

from posthog_integrations.web import RequestContext, RequestInfo, RequestOptions, RequestTracker
from posthog_integrations.web.request import tracing_ids_from_wsgi, wsgi_path

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from posthog_integrations.core.client import Client
    from posthog_integrations.web.options import RequestSettings

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class PostHogMiddleware:
    """Wrap any WSGI app: ``app = PostHogMiddleware(app)``.

    Each request runs in its own context, bound to ``client`` (default: the module's default
    client), with identity and session from the ``X-POSTHOG-*`` headers and request tags. The
    context is re-entered while the server iterates and closes the response, so captures in a
    streamed body carry the request's identity. Exceptions escaping the app or its response
    are captured once and re-raised unchanged. Other keyword arguments are
    :class:`~posthog_integrations.web.RequestOptions`.
    """

    source = "wsgi"  # $exception_source of what escapes the app

    def __init__(self, app: WSGIApp, *, client: Client | None = None,
                 **options: Unpack[RequestSettings]) -> None:
        self.app = app
        self._tracker = RequestTracker(client, RequestOptions.build(options), self.source)

    @staticmethod
    def read_info(environ: Environ) -> RequestInfo:
        """Describe the request (frameworks built on this add what they know, e.g. the route)."""
        return RequestInfo.from_wsgi(environ)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = self._tracker.open(environ, wsgi_path, tracing_ids_from_wsgi, self.read_info)
        if request is None:
            return self.app(environ, start_response)
        response = _Response(request)
        with request:
            try:
                result = self.app(environ, response.watch(start_response))
            except Exception as error:
                request.capture_exception(error, response.status)
                raise
        if _runs_no_code(result, environ):
            response.finish()
            return result  # untouched: servers special-case lists, file wrappers and sentinels
        return _ResponseIterable(response, result)


def _runs_no_code(result: object, environ: Environ) -> bool:
    """Whether the server may take ``result`` as it is: nothing of the app runs when it's sent."""
    if isinstance(result, (list, tuple)) or not hasattr(result, "__iter__"):
        return True
    file_wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(file_wrapper, type) and isinstance(result, file_wrapper)


class _Response:
    """What the app answered, recorded from its ``start_response`` call."""

    __slots__ = ("content_type", "request", "status")

    def __init__(self, request: RequestContext) -> None:
        self.request = request
        self.status: int | None = None
        self.content_type: str | None = None

    def watch(self, start_response: StartResponse) -> StartResponse:
        def start_response_watched(status: str, headers: list[tuple[str, str]],
                                   exc_info: Any = None) -> Callable[[bytes], object]:
            self._record(status, headers)
            return start_response(status, headers, exc_info)

        return start_response_watched

    def _record(self, status: str, headers: list[tuple[str, str]]) -> None:
        try:
            self.status = int(status[:3])
            self.content_type = next(
                (value for name, value in headers if name.lower() == "content-type"), None
            )
        except Exception:  # malformed: the server will say so; we must not say it first
            self.status = self.content_type = None

    def finish(self) -> None:
        with self.request:
            self.request.finish(self.status, self.content_type)


class _ResponseIterable:
    """The app's response, iterated and closed inside the request's context."""

    __slots__ = ("_chunks", "_response", "_result")

    def __init__(self, response: _Response, result: Iterable[bytes]) -> None:
        self._response = response
        self._result = result
        self._chunks: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        request = self._response.request
        with request:
            try:
                if self._chunks is None:
                    self._chunks = iter(self._result)
                return next(self._chunks)
            except StopIteration:
                raise
            except Exception as error:
                request.capture_exception(error, self._response.status)
                raise

    def close(self) -> None:
        request = self._response.request
        with request:
            try:
                close = getattr(self._result, "close", None)
                if close is not None:
                    close()
            except Exception as error:
                request.capture_exception(error, self._response.status)
                raise
            request.finish(self._response.status, self._response.content_type)
