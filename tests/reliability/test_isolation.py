"""Context isolation under load: thousands of concurrent requests, no event ever crosses over.

Each adapter (ASGI, Django, Flask, generic WSGI) serves ``REQUESTS`` requests, ``CONCURRENCY``
at a time (asyncio tasks for ASGI, threads for WSGI). Request ``n`` sends its own distinct id
and session in the tracing headers; its view waits a little (so that requests interleave),
tags ``request_tag`` itself, waits again, then captures one event with no explicit identity.
Every recorded event must name one request consistently (distinct id, session, tag and the
request path all say ``n``), and every request must have produced exactly one event.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware as ASGIMiddleware
from posthog_integrations.testing import CapturedEvents, capture_events
from posthog_integrations.wsgi import PostHogMiddleware as WSGIMiddleware
from tests.conftest import API_KEY

try:
    import django

    HAS_DJANGO = django.VERSION >= (4, 2)
except ImportError:
    HAS_DJANGO = False

REQUESTS = 10_000
CONCURRENCY = 200
MAX_PAUSE = 0.001  # seconds a view may wait at each of its two pauses
EVENT = "isolated"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- what each view does, whatever the framework ------------------------------------------


def pause() -> None:
    """Give other threads the GIL at a random moment, so that requests interleave."""
    time.sleep(random.random() * MAX_PAUSE)


async def async_pause() -> None:
    await asyncio.sleep(random.random() * MAX_PAUSE)


def tag_and_capture(number: int) -> None:
    posthog.tag("request_tag", f"tag-{number}")
    pause()
    posthog.capture(EVENT)


def number_in(path: str) -> int:
    return int(path.rstrip("/").rsplit("/", 1)[1])


# -- checking what was recorded ---------------------------------------------------------------


def attribution(events: CapturedEvents, statuses: list[int]) -> dict[str, Any]:
    """A summary that equals ``expected_attribution()`` only when isolation held."""
    misattributed = []
    numbers = set()
    for event in events.named(EVENT):
        properties = event["properties"]
        number = number_in(properties["$request_path"])
        numbers.add(number)
        seen = (event["distinct_id"], properties.get("$session_id"), properties.get("request_tag"))
        if seen != (f"user-{number}", f"session-{number}", f"tag-{number}"):
            misattributed.append((number, seen))
    return {
        "events": len(events),
        "requests with an event": len(numbers),
        "misattributed": len(misattributed),
        "first misattributed": misattributed[:3],
        "non-200 responses": sum(status != 200 for status in statuses),
    }


def expected_attribution(requests: int) -> dict[str, Any]:
    return {"events": requests, "requests with an event": requests, "misattributed": 0,
            "first misattributed": [], "non-200 responses": 0}


# -- drivers ----------------------------------------------------------------------------------


def asgi_scope(number: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": f"/r/{number}", "raw_path": f"/r/{number}".encode(),
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000 + number % 10000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"x-posthog-distinct-id", f"user-{number}".encode()),
            (b"x-posthog-session-id", f"session-{number}".encode()),
        ],
    }


async def call_asgi(app: Any, number: int) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(asgi_scope(number), receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def drive_asgi(app: Any, requests: int) -> list[int]:
    async def all_requests() -> list[int]:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(number: int) -> int:
            async with slots:
                return await call_asgi(app, number)

        return list(await asyncio.gather(*(one(number) for number in range(requests))))

    return asyncio.run(all_requests())


def wsgi_environ(number: int) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": f"/r/{number}",
        "QUERY_STRING": "", "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "testserver",
        "HTTP_X_POSTHOG_DISTINCT_ID": f"user-{number}",
        "HTTP_X_POSTHOG_SESSION_ID": f"session-{number}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call_wsgi(app: WSGIApp, number: int) -> int:
    """Serve one request as a threaded WSGI server does: call, pull the body, close."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    body = app(wsgi_environ(number), start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return int(status[0][:3])


def drive_wsgi(app: WSGIApp, requests: int) -> list[int]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(lambda number: call_wsgi(app, number), range(requests)))


# -- the apps ---------------------------------------------------------------------------------


async def starlette_view(request: Request) -> PlainTextResponse:
    number = request.path_params["number"]
    await async_pause()
    posthog.tag("request_tag", f"tag-{number}")
    await async_pause()
    posthog.capture(EVENT)
    return PlainTextResponse("ok")


def asgi_app(client: Client) -> Any:
    return Starlette(routes=[Route("/r/{number:int}", starlette_view)],
                     middleware=[Middleware(ASGIMiddleware, client=client)])


def generic_wsgi_app(client: Client) -> WSGIApp:
    """A bare WSGI app whose body is a generator: the work happens after its first yield."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"o"
        pause()
        tag_and_capture(number_in(environ["PATH_INFO"]))
        yield b"k"

    return WSGIMiddleware(app, client=client)


def flask_app(client: Client) -> WSGIApp:
    from flask import Flask

    from posthog_integrations.flask import PostHog

    app = Flask(__name__)

    @app.route("/r/<int:number>")
    def view(number: int) -> str:
        pause()
        tag_and_capture(number)
        return "ok"

    PostHog(app, client=client)
    return app


if HAS_DJANGO:
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    def django_view(request: HttpRequest, number: int) -> HttpResponse:
        pause()
        tag_and_capture(number)
        return HttpResponse("ok")

    urlpatterns = [path("r/<int:number>/", django_view)]


# The project's stack without its async-only neighbour: under the WSGI handler that one costs
# an event loop per request (async_to_sync), 36 s for 10,000 requests on this 2-core machine.
SYNC_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "posthog_integrations.django.PostHogMiddleware",
    "tests.django.project.middleware.FailingMiddleware",
]


def serve_django(client: Client, requests: int) -> list[int]:
    """Django's WSGI handler with the tests' project settings, ``SYNC_MIDDLEWARE`` and this
    module's URLs. Django's integration sends to the default client (``client`` is unused);
    ``capture_events`` records it all the same."""
    pytest.importorskip("django", minversion="4.2")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.project.settings")
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=SYNC_MIDDLEWARE):
        handler = WSGIHandler()  # loads the middleware of the settings in force

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            environ["PATH_INFO"] += "/"
            return handler(environ, start_response)

        return drive_wsgi(app, requests)


# -- the test ---------------------------------------------------------------------------------


def serve_asgi(client: Client, requests: int) -> list[int]:
    return drive_asgi(asgi_app(client), requests)


def serve_wsgi(client: Client, requests: int) -> list[int]:
    return drive_wsgi(generic_wsgi_app(client), requests)


def serve_flask(client: Client, requests: int) -> list[int]:
    return drive_wsgi(flask_app(client), requests)


@pytest.mark.parametrize("serve", [serve_asgi, serve_django, serve_flask, serve_wsgi],
                         ids=["asgi", "django", "flask", "wsgi"])
def test_every_event_belongs_to_its_own_request(serve: Callable[[Client, int], list[int]]
                                                ) -> None:
    client = Client(API_KEY, host="http://127.0.0.1:9")
    started = time.perf_counter()
    try:
        with capture_events() as events:
            statuses = serve(client, REQUESTS)
    finally:
        client.shutdown(timeout=1)
    elapsed = time.perf_counter() - started
    print(f"{REQUESTS} requests, {CONCURRENCY} at a time, in {elapsed:.2f} s", file=sys.stderr)
    assert attribution(events, statuses) == expected_attribution(REQUESTS)
