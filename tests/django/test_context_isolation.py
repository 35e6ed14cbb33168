"""Nothing of a request outlives it on the thread, however its streamed body ends.

Django is called the way a WSGI server calls it (gunicorn, uWSGI): the handler returns, the
server pulls part of the body, then calls ``close()`` when the client has gone away. Each
scenario runs in a copy of the test's context, so that a leak cannot reach other tests.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterable
from typing import Any, Callable
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, override_settings

from posthog_integrations import Client as PostHogClient
from posthog_integrations.core.context import Scope, activate, current_scope
from posthog_integrations.sink import LocalSink
from tests.conftest import delivered

VISITOR_A = {"HTTP_X_POSTHOG_DISTINCT_ID": "visitor-a", "HTTP_X_POSTHOG_SESSION_ID": "session-a"}
SYNC_CHAIN = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "posthog_integrations.django.PostHogMiddleware",
]
# The project's own chain has an async-only middleware after ours: Django runs it on a loop.
CHAINS = {"sync": SYNC_CHAIN, "async": settings.MIDDLEWARE}


def call(handler: WSGIHandler, path: str, **headers: str) -> tuple[dict[str, Any],
                                                                    Iterable[bytes]]:
    """Call Django as a WSGI server does; the environ (``request.META``) and the body."""
    environ: dict[str, Any] = {"PATH_INFO": path, **headers}
    setup_testing_defaults(environ)
    body = handler(environ, lambda status, headers, exc_info=None: None)
    return environ, body


def read_all(body: Iterable[bytes]) -> bytes:
    try:
        return b"".join(body)
    finally:
        body.close()  # type: ignore[attr-defined]


def in_own_context(scenario: Callable[[], Any]) -> Any:
    return contextvars.copy_context().run(scenario)


def assert_nothing_of_a(event: dict[str, Any]) -> None:
    properties = event["properties"]
    assert event["distinct_id"] != "visitor-a"
    assert properties.get("$session_id") != "session-a"
    assert "visitor-a" not in properties["$current_url"]
    assert "visitor_tag" not in properties
    assert "stream_tag" not in properties
    assert properties["$request_path"] == "/items/2/"


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_stream_closed_after_the_middleware_returned_leaves_nothing_on_the_thread(
    chain: str, default_client: PostHogClient, sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    def scenario() -> tuple[bytes, Scope | None, bytes]:
        handler = WSGIHandler()
        _, body = call(handler, "/stream-in-context/visitor-a/", **VISITOR_A)
        first = next(iter(body))
        body.close()  # type: ignore[attr-defined]  # the client went away mid-stream
        left_on_the_thread = current_scope()
        _, later = call(handler, "/items/2/")
        return first, left_on_the_thread, read_all(later)

    with override_settings(MIDDLEWARE=CHAINS[chain]):
        first, left_on_the_thread, later = in_own_context(scenario)
    assert (first, later) == (b"chunk 0\n", b"item 2")
    assert left_on_the_thread is None
    [item] = delivered(default_client, sink, event="item viewed")
    assert_nothing_of_a(item)
    # The body's own clean-up ran in its request's context, not in the server's.
    [closed] = sink.events(event="stream closed")
    assert closed["distinct_id"] == "visitor-a"
    assert closed["properties"]["stream_tag"] == "stream-of-visitor-a"
    assert warnings(caplog) == []


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_stream_read_to_the_end_leaves_nothing_on_the_thread(
    chain: str, default_client: PostHogClient, sink: LocalSink
) -> None:
    def scenario() -> tuple[bytes, Scope | None]:
        handler = WSGIHandler()
        _, body = call(handler, "/stream-in-context/visitor-a/", **VISITOR_A)
        return read_all(body), current_scope()

    with override_settings(MIDDLEWARE=CHAINS[chain]):
        content, left_on_the_thread = in_own_context(scenario)
    assert content == b"chunk 0\nchunk 1\nchunk 2\n"
    assert left_on_the_thread is None
    [closed] = delivered(default_client, sink, event="stream closed")
    assert closed["distinct_id"] == "visitor-a"


def test_a_finished_requests_scope_left_on_the_thread_is_never_adopted(
    default_client: PostHogClient, sink: LocalSink
) -> None:
    def scenario() -> bytes:
        handler = WSGIHandler()
        environ, body = call(handler, "/stream-in-context/visitor-a/", **VISITOR_A)
        read_all(body)
        # Something outside the middleware's reach (a server's hook, a stray generator) left
        # the finished request's scope current on the thread.
        activate(environ["test.scopes"][0])
        _, later = call(handler, "/items/2/")
        return read_all(later)

    with override_settings(MIDDLEWARE=SYNC_CHAIN):
        assert in_own_context(scenario) == b"item 2"
    [item] = delivered(default_client, sink, event="item viewed")
    assert_nothing_of_a(item)



@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_a_sync_stream_under_asgi_is_closed_in_its_request_context(
    default_client: PostHogClient, sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> bytes:
        response = await AsyncClient().get("/stream-in-context/visitor-a/",
                                           headers={"X-PostHog-Distinct-Id": "visitor-a"})
        # as Django's ASGI handler sends a sync iterator: consumed in a worker thread
        return b"".join([chunk async for chunk in response])

    assert in_own_context(lambda: asyncio.run(run())) == b"chunk 0\nchunk 1\nchunk 2\n"
    [closed] = delivered(default_client, sink, event="stream closed")
    assert closed["distinct_id"] == "visitor-a"
    assert closed["properties"]["stream_tag"] == "stream-of-visitor-a"
    assert warnings(caplog) == []


def test_what_a_request_set_for_other_libraries_stays_on_the_thread(
    default_client: PostHogClient,
) -> None:
    """Only PostHog's state is kept from the thread: Django's own per-thread state (here its
    cache connections) lives on from request to request as it does without the middleware."""

    def scenario() -> list[object]:
        handler = WSGIHandler()
        backends = []
        for _ in range(2):
            environ, body = call(handler, "/cache-in-use/")
            read_all(body)
            backends.append(environ["test.cache"])
        return backends

    # New cache settings: Django starts from no cache connection at all.
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "LOCATION": "context-isolation"}}
    with override_settings(MIDDLEWARE=SYNC_CHAIN, CACHES=caches):
        first, second = in_own_context(scenario)
    assert first is second


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "posthog_integrations" and r.levelno >= logging.WARNING]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_a_sync_body_under_asgi_sees_what_its_request_set_for_django(
    default_client: PostHogClient,
) -> None:
    async def run() -> bytes:
        response = await AsyncClient().get("/stream-in-french/")
        return b"".join([chunk async for chunk in response])

    assert in_own_context(lambda: asyncio.run(run())) == b"fr"


def test_a_sync_body_under_wsgi_sees_what_its_request_set_for_django(
    default_client: PostHogClient,
) -> None:
    def scenario() -> bytes:
        _, body = call(WSGIHandler(), "/stream-in-french/")
        return read_all(body)

    with override_settings(MIDDLEWARE=SYNC_CHAIN):
        assert in_own_context(scenario) == b"fr"
