"""Per-request cost of each library's Django middleware, under the WSGI and the ASGI handler.

Two stacks: ours (or the official ``PosthogContextMiddleware``) alone, and inside the stack
``django-admin startproject`` generates. Every run measures the same stack without the PostHog
middleware back to back with it (alternating which goes first), so each ratio compares numbers
taken under the same conditions. The request carries the tracing headers, as a posthog-js
front end sends them, and its view captures nothing: what is measured is the middleware.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Callable

from .calls import asgi_scope, time_wsgi_requests
from .core import Benchmark, RunResult, Settings, paired_samples
from .endpoint import Endpoint
from .variants import Variant

__all__ = ["DJANGO_BENCHMARKS"]

OURS = "posthog_integrations.django.PostHogMiddleware"
OFFICIAL = "posthog.integrations.django.PosthogContextMiddleware"
STARTPROJECT_STACK = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
PATH = "/items/42/"
_urlpatterns: list[Any] = []
urlpatterns = _urlpatterns  # ROOT_URLCONF is this module


def _setup() -> None:
    from django.conf import settings

    if settings.configured:
        return
    import django
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    settings.configure(
        DEBUG=False, SECRET_KEY="bench-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        USE_TZ=True, MIDDLEWARE=[],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "django.contrib.messages"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        POSTHOG={"API_KEY": "phc_bench", "HOST": "http://127.0.0.1:9"},
    )
    django.setup()

    def item(request: HttpRequest, item_id: int) -> HttpResponse:
        return HttpResponse(f"item {item_id}")

    _urlpatterns.append(path("items/<int:item_id>/", item))


def _asgi_requests(loop: asyncio.AbstractEventLoop) -> Callable[[Any, int], float]:
    scope = asgi_scope(PATH)

    async def many(handler: Any, count: int) -> float:
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        start = time.perf_counter()
        for _ in range(count):
            sent_body = False

            async def receive() -> dict[str, Any]:
                nonlocal sent_body
                if sent_body:  # the client stays connected: nothing more arrives
                    await asyncio.Event().wait()
                sent_body = True
                return {"type": "http.request", "body": b"", "more_body": False}

            await handler(dict(scope), receive, send)
        elapsed = time.perf_counter() - start
        if statuses.count(200) != count:
            raise RuntimeError(f"expected {count} responses of 200, got {statuses[:3]}...")
        return elapsed

    return lambda handler, count: loop.run_until_complete(many(handler, count))


def _wsgi_requests(handler: Any, count: int) -> float:
    return time_wsgi_requests(handler, count, PATH)


def _bench(handler_kind: str, stack: list[str]) -> Callable[
    [Variant, Endpoint, Settings, RunResult], None
]:
    def run(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
        result.sends_events = False
        _setup()
        from django.core.handlers.asgi import ASGIHandler
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import override_settings

        import posthog_integrations

        api_key = f"phc_bench_{uuid.uuid4().hex[:10]}"
        client = variant.make_client(endpoint.url, api_key)
        if variant.name == "ours":
            posthog_integrations.configure(api_key=api_key, host=endpoint.url)
        middleware = OURS if variant.name == "ours" else OFFICIAL
        position = stack.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1 \
            if stack else 0
        wrapped_stack = [*stack[:position], middleware, *stack[position:]]
        loop = asyncio.new_event_loop()
        handler_class = WSGIHandler if handler_kind == "wsgi" else ASGIHandler
        timed = _wsgi_requests if handler_kind == "wsgi" else _asgi_requests(loop)
        try:
            with override_settings(MIDDLEWARE=stack):
                bare = handler_class()
            with override_settings(MIDDLEWARE=wrapped_stack, POSTHOG_MW_CLIENT=client):
                wrapped = handler_class()
            block = max(settings.request_block // 4, 10)  # a Django request costs more
            for handler in (bare, wrapped):
                timed(handler, block * 3)
            paired_samples(bare, wrapped, timed, settings.request_samples, block, result)
        finally:
            loop.close()
            variant.shutdown(client, 5.0)
            if variant.name == "ours":
                posthog_integrations.shutdown()

    return run


DJANGO_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("django_wsgi_alone", "django", "Django WSGI, PostHog middleware alone",
              _bench("wsgi", [])),
    Benchmark("django_wsgi_project", "django", "Django WSGI, startproject stack",
              _bench("wsgi", STARTPROJECT_STACK)),
    Benchmark("django_asgi_alone", "django", "Django ASGI, PostHog middleware alone",
              _bench("asgi", [])),
    Benchmark("django_asgi_project", "django", "Django ASGI, startproject stack",
              _bench("asgi", STARTPROJECT_STACK)),
)
