"""Django middleware: one PostHog context per request, sync or async, whichever the stack is."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.core.signals import got_request_exception
from django.db import close_old_connections
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.utils.functional import LazyObject, empty

from posthog_integrations.core.client import Client
from posthog_integrations.core.context import carry_over
from posthog_integrations.core.default_client import default_client
from posthog_integrations.web import RequestContext, RequestInfo, RequestTracker, current_request
from posthog_integrations.web.request import tracing_ids_from_wsgi
from posthog_integrations.web.scope import identify_lazily

from . import celery_binding, conf
from .apps import PostHogConfig

logger = logging.getLogger("posthog_integrations")

# $exception_source of what Django's middleware hooks and got_request_exception catch, also in
# a request whose context our ASGI or WSGI middleware opened.
SOURCE = "django.middleware"
# What Django answers with 404, 403 and 400: expected, not errors worth an $exception event.
NOT_CAPTURED = (Http404, PermissionDenied, SuspiciousOperation)
# How long an async request's first capture may wait for its user to be looked up off the loop.
USER_LOOKUP_TIMEOUT = 5.0


def read_request(request: HttpRequest) -> RequestInfo:
    """A Django request as the request layer sees it (``META`` is a WSGI environ in shape)."""
    info = RequestInfo.from_wsgi(request.META)
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None and match.route is not None else None
    return info._replace(scheme=request.scheme or info.scheme, path=request.path, route=route)


def _path(request: HttpRequest) -> str:
    return str(request.path)


def _tracing_ids(request: HttpRequest) -> tuple[str | None, str | None]:
    return tracing_ids_from_wsgi(request.META)


class PostHogMiddleware:
    """``MIDDLEWARE += ["posthog_integrations.django.PostHogMiddleware"]``, after
    ``AuthenticationMiddleware``.

    Each request runs in a context bound to the default client (configured from
    ``settings.POSTHOG``). Its identity is the logged-in user's primary key (with
    ``IDENTIFY_USER``, the default; or what the ``IDENTIFY`` hook returns), whatever the
    ``X-POSTHOG-DISTINCT-ID`` header says; the header identifies anonymous visitors. The user
    is looked up when the request's first event is captured or its distinct id first read,
    never for a request that captures nothing. ``$route`` comes from the resolved URL pattern,
    read with the other tags when the first event is captured. View exceptions are captured
    once (not ``Http404``, ``PermissionDenied`` or ``SuspiciousOperation``); Django still
    turns them into responses.

    Without ``posthog_integrations.django`` in ``INSTALLED_APPS`` (whose ``ready()`` configures
    the default client), the first middleware built configures it from ``settings.POSTHOG``
    (with ``CELERY``, binds the Celery integration too) and logs a warning recommending the
    app.
    """

    sync_capable = True
    async_capable = True
    reads_official_settings = False

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_on_request_exception, dispatch_uid=__name__)
        config = conf.load(official_settings=self.reads_official_settings)
        if not apps.is_installed(PostHogConfig.name):
            _configure_without_the_app(config)
            celery_binding.bind_once(config.celery, self._client())
        self._pageviews = config.request_options.capture_pageviews
        self._tracker = RequestTracker(self._client(), config.request_options, SOURCE,
                                       _user_id if config.identify_user else None)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        context = self._tracker.open(request, _path, _tracing_ids, read_request)
        if context is None:  # excluded, or our ASGI/WSGI middleware already tracks it
            self._identify_inside(request)
            return self.get_response(request)
        own = contextvars.copy_context()  # the request's own: its body is pulled and closed in it
        try:
            response = own.run(self._respond, request, context)
        except BaseException:
            context.end()
            raise
        finally:
            carry_over(own)
        return _hand_over(response, context, own)

    def _respond(self, request: HttpRequest, context: RequestContext) -> Any:
        context.install()
        response = self.get_response(request)
        if self._pageviews:
            context.finish(response.status_code, response.get("Content-Type"))
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        context = self._tracker.open(request, _path, _tracing_ids, read_request)
        if context is None:
            self._identify_inside(request)
            return await self.get_response(request)
        try:
            with context:
                response = await self.get_response(request)
                if self._pageviews:
                    context.finish(response.status_code, response.get("Content-Type"))
        except BaseException:
            context.end()
            raise
        return _hand_over(response, context, None)

    def _client(self) -> Client | None:
        """None: the default client, configured from ``settings.POSTHOG``."""
        return None

    def _identify_inside(self, request: HttpRequest) -> None:
        """Inside a request our ASGI or WSGI middleware tracks, the Django user wins too."""
        find_user = self._tracker.find_user
        if find_user is not None and current_request() is not None:
            identify_lazily(request, find_user)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        context = current_request()
        if context is not None and not isinstance(exception, NOT_CAPTURED):
            context.capture_exception(exception, source=SOURCE)


_configured_without_the_app = False
_configuring_lock = threading.Lock()


def _configure_without_the_app(config: conf.DjangoConfig) -> None:
    """Do what the app's ``ready()`` does, once per process, and say why the app is better:
    code that builds no middleware (management commands, workers) is not configured."""
    global _configured_without_the_app
    with _configuring_lock:
        if _configured_without_the_app:
            return
        default_client.configure(config.client_options)
        _configured_without_the_app = True
    logger.warning(
        "%r is not in INSTALLED_APPS: PostHogMiddleware configured the default client from "
        "settings.POSTHOG itself. Add the app to INSTALLED_APPS so that code outside requests "
        "(management commands, workers) is configured too, and for the posthog_bootstrap "
        "template tag, the posthog_check command and the system checks", PostHogConfig.name)


def _on_request_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """Django's signal for exceptions it turns into error responses, including those raised by
    middleware further in, which ``process_exception`` never sees. Captured once either way."""
    error = sys.exc_info()[1]
    context = current_request()
    if context is not None and isinstance(error, Exception) and not isinstance(
        error, NOT_CAPTURED
    ):
        context.capture_exception(error, source=SOURCE)


class PosthogContextMiddleware(PostHogMiddleware):
    """A drop-in for the official package's middleware of the same name.

    Also reads its ``POSTHOG_MW_*`` settings (``POSTHOG_MW_CLIENT``, ``..._CAPTURE_EXCEPTIONS``,
    ``..._REQUEST_FILTER``, ``..._EXTRA_TAGS``/``..._EXTRA_PROPERTIES``,
    ``..._TAG_MAP``/``..._PROPERTIES_MAP``, ``..._CAPTURE_TRACING_HEADERS``) where
    ``settings.POSTHOG`` leaves them unset. Unlike the official middleware it adds no email.
    """

    reads_official_settings = True

    def _client(self) -> Client | None:
        client = getattr(settings, "POSTHOG_MW_CLIENT", None)
        if client is None or isinstance(client, Client):
            return client
        logger.warning("POSTHOG_MW_CLIENT is a %s, not a posthog_integrations.Client; "
                       "using the default client", type(client).__name__)
        return None


def _user_id(request: HttpRequest) -> str | None:
    """The authenticated user's primary key (nothing else about them), or None.

    Called when the request's identity is first needed. In an async view, a user the app has
    not loaded yet is looked up in a worker thread (Django refuses database work on the event
    loop), the loop waiting for it: ``await request.auser()`` first avoids that wait.
    """
    try:
        user = _user_on_the_loop(request) if _on_event_loop() else getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return str(user.pk)
    except Exception:  # a broken auth backend is the app's to report, not ours
        logger.debug("could not read the request's user", exc_info=True)
    return None


def _user_on_the_loop(request: HttpRequest) -> Any:
    """``request.user`` without database work on the event loop: as set or loaded already
    (by ``request.auser()`` too), else looked up in a worker thread."""
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject) and user._wrapped is empty:
        loaded = request.__dict__.get("_acached_user")
        return loaded if loaded is not None else _user_off_the_loop(request)
    return user


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_lookups: ThreadPoolExecutor | None = None
_lookups_lock = threading.Lock()
_blocking_lookup_warned = False


def _user_off_the_loop(request: HttpRequest) -> Any:
    global _lookups, _blocking_lookup_warned
    if _lookups is None:
        with _lookups_lock:
            if _lookups is None:
                _lookups = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="posthog-user-lookup")
    if not _blocking_lookup_warned:
        _blocking_lookup_warned = True
        logger.warning("an async view captured before loading its user: PostHog looked the "
                       "user up in a worker thread while the event loop waited; `await "
                       "request.auser()` before capturing avoids the wait (logged once)")
    return _lookups.submit(_load_user, request).result(timeout=USER_LOOKUP_TIMEOUT)


def _load_user(request: HttpRequest) -> Any:
    try:
        user = request.user
        user.is_authenticated  # noqa: B018 - evaluates Django's lazy user here, off the loop
        return user
    finally:
        close_old_connections()  # as Django does at the end of a request, for this thread


def _hand_over(response: Any, context: RequestContext,
               own: contextvars.Context | None) -> Any:
    """Give the server a response whose remaining work stays in the request's context.

    A streamed body made by a sync iterator is pulled, and the response closed, in one context
    of the request's own (``own``, or else a copy of the context of whoever pulls or closes it
    first: under ASGI, the worker thread Django consumes the body in). What the body's code
    sets, such as a generator holding ``new_context()`` open across its yields, stays there,
    even when the server closes the response after a disconnect, in a thread that goes on to
    serve other requests. An async body runs in the request's task, re-entering the request's
    context for every chunk.
    """
    if not isinstance(response, StreamingHttpResponse):
        context.end()
        return response
    status = response.status_code
    content: Any = response.streaming_content
    close = response.close
    if response.is_async:
        response.streaming_content = _async_chunks(content, context, status)
        run: Callable[..., Any] = _call
    else:
        run = _RestOfRequest(context, own)
        response.streaming_content = context.iterate(content, run, lambda: status)

    def close_in_request_context() -> None:
        try:
            run(close)
        finally:
            context.end()

    # A streamed response is never pickled (as a cached one is), so an instance attribute is
    # safe here: Django itself patches a file's close() the same way for wsgi.file_wrapper.
    response.close = close_in_request_context  # type: ignore[method-assign]
    return response


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


class _RestOfRequest:
    """Runs a function in the request's own context, made on first use if not given."""

    __slots__ = ("_context", "_own")

    def __init__(self, context: RequestContext, own: contextvars.Context | None) -> None:
        self._context = context
        self._own = own

    def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        own = self._own
        if own is None:
            own = self._own = contextvars.copy_context()
            own.run(self._context.install)
        return own.run(function, *args)


async def _async_chunks(chunks: AsyncIterator[bytes], context: RequestContext,
                        status: int) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    while True:
        with context:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except Exception as error:
                context.capture_exception(error, status)
                raise
        yield chunk
