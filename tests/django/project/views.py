"""Views that capture, raise and stream, in sync and async flavours."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils import translation

import posthog_integrations as posthog
from posthog_integrations.core.context import current_scope


class ViewFailed(Exception):
    pass


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    posthog.capture("item viewed", properties={"item": item_id,
                                               "thread": threading.get_ident()})
    return HttpResponse(f"item {item_id}")


async def async_item(request: HttpRequest, item_id: int) -> HttpResponse:
    posthog.capture("async item viewed", properties={"item": item_id,
                                                     "thread": threading.get_ident()})
    return HttpResponse(f"async item {item_id}")


def fail(request: HttpRequest) -> HttpResponse:
    try:
        {}["row"]
    except KeyError as cause:
        raise ViewFailed("view failed") from cause
    return HttpResponse()


async def async_fail(request: HttpRequest) -> HttpResponse:
    raise ViewFailed("async view failed")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"first\n"
        posthog.capture("mid stream")
        yield b"second\n"

    return StreamingHttpResponse(chunks())


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        posthog.capture("async mid stream")
        yield b"second\n"

    return StreamingHttpResponse(chunks())


def stream_in_context(request: HttpRequest, visitor: str) -> StreamingHttpResponse:
    """Streams with a context held open across yields, as a view may; records the scopes its
    body saw in ``request.META`` (the WSGI environ), for the test that calls it."""
    posthog.tag("visitor_tag", f"tag-of-{visitor}")
    seen = request.META.setdefault("test.scopes", [])

    def chunks() -> Iterator[bytes]:
        with posthog.new_context():
            posthog.tag("stream_tag", f"stream-of-{visitor}")
            try:
                for number in range(3):
                    seen.append(current_scope())
                    yield f"chunk {number}\n".encode()
            finally:
                posthog.capture("stream closed")

    return StreamingHttpResponse(chunks())


def stream_in_french(request: HttpRequest) -> StreamingHttpResponse:
    """Activates French for the request; its body says which language it runs in."""
    translation.activate("fr")

    def chunks() -> Iterator[bytes]:
        yield str(translation.get_language()).encode()

    return StreamingHttpResponse(chunks())


def cache_in_use(request: HttpRequest) -> HttpResponse:
    """Records the cache backend Django hands this request, in ``request.META``."""
    request.META["test.cache"] = caches["default"]
    return HttpResponse("cached")


def captured_then_raised(request: HttpRequest) -> HttpResponse:
    try:
        raise ViewFailed("seen twice")
    except ViewFailed:
        posthog.capture_exception()
        raise


def identity(request: HttpRequest) -> JsonResponse:
    """Reads the request's identity, as flags will, then captures."""
    seen = posthog.get_context_distinct_id()
    posthog.capture("identity read")
    return JsonResponse({"distinct_id": seen})


async def async_identity(request: HttpRequest) -> JsonResponse:
    seen = posthog.get_context_distinct_id()
    posthog.capture("identity read")
    return JsonResponse({"distinct_id": seen})


def user_untouched(request: HttpRequest) -> JsonResponse:
    """Captures nothing; says whether anything loaded the request's user before it answered."""
    return JsonResponse({"user_loaded": _user_loaded(request)})


async def async_user_untouched(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user_loaded": _user_loaded(request)})


def _user_loaded(request: HttpRequest) -> bool:
    return hasattr(request, "_cached_user") or hasattr(request, "_acached_user")


async def async_identity_after_auser(request: HttpRequest) -> JsonResponse:
    """Loads the user the async way first, as an async view that cares about it does."""
    await request.auser()  # type: ignore[attr-defined]
    seen = posthog.get_context_distinct_id()
    posthog.capture("identity read")
    return JsonResponse({"distinct_id": seen, "sync_user_loaded": hasattr(request, "_cached_user")})


def flag(request: HttpRequest) -> JsonResponse:
    """Evaluates the request's flags for its identity and reads one."""
    return JsonResponse({"new-checkout": posthog.evaluate_flags().get_flag("new-checkout")})


async def async_flag(request: HttpRequest) -> JsonResponse:
    snapshot = await posthog.aevaluate_flags()
    return JsonResponse({"new-checkout": snapshot.get_flag("new-checkout")})


class CheckoutFailed(Exception):
    pass


def checkout_with_flags(request: HttpRequest) -> JsonResponse:
    """Reads the request's flags, captures, reads again, then fails."""
    variant = posthog.flags().get_flag("new-checkout")
    posthog.capture("checkout started")
    assert posthog.flags().get_flag("new-checkout") == variant  # the same snapshot
    raise CheckoutFailed(str(variant))


async def async_checkout_with_flags(request: HttpRequest) -> JsonResponse:
    variant = (await posthog.aflags()).get_flag("new-checkout")
    posthog.capture("checkout started")
    raise CheckoutFailed(str(variant))
