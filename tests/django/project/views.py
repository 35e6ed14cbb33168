"""Views that capture, raise and stream, in sync and async flavours."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

import posthog_integrations as posthog


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


def captured_then_raised(request: HttpRequest) -> HttpResponse:
    try:
        raise ViewFailed("seen twice")
    except ViewFailed:
        posthog.capture_exception()
        raise
