"""End to end: a Starlette view reads the request's flags with ``await aflags()``; the event it
captures next reaches the local endpoint with them, for the identity the request carried."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY


async def checkout(request: Request) -> JSONResponse:
    flags = await posthog.aflags()
    variant = flags.get_flag("new-checkout")
    posthog.capture("checkout started")
    again = await posthog.aflags()  # the same snapshot: no second request
    return JSONResponse({"variant": variant, "same": again is flags})


def test_a_view_reads_the_request_flags_and_its_event_carries_them() -> None:
    with LocalSink(flags={"flags": {"new-checkout": "test", "dark-mode": True}}) as sink:
        client = Client(API_KEY, host=sink.url)
        app = PostHogMiddleware(Starlette(routes=[Route("/checkout", checkout)]), client=client)
        try:
            with TestClient(app) as http:
                response = http.get("/checkout", headers={"X-POSTHOG-DISTINCT-ID": "visitor-7"})
            assert response.json() == {"variant": "test", "same": True}
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)
        [event] = sink.events(event="checkout started")
        assert event["distinct_id"] == "visitor-7"
        assert event["properties"]["$feature/new-checkout"] == "test"
        assert event["properties"]["$active_feature_flags"] == ["new-checkout"]
        assert "$feature/dark-mode" not in event["properties"]  # never read in the request
        flag_requests = [r for r in sink.requests() if r.path.rstrip("/") == "/flags"]
        assert len(flag_requests) == 1
        assert flag_requests[0].body["distinct_id"] == "visitor-7"


def sync_checkout(request: Request) -> JSONResponse:
    """A sync endpoint: Starlette runs it in a thread, in a copy of the request's context."""
    if posthog.flags().get_flag("new-checkout") == "test":
        raise RuntimeError("the new checkout is broken")
    return JSONResponse({})


def test_flags_read_in_a_sync_endpoint_ride_on_the_requests_exception() -> None:
    with LocalSink(flags={"flags": {"new-checkout": "test"}}) as sink:
        client = Client(API_KEY, host=sink.url)
        app = PostHogMiddleware(Starlette(routes=[Route("/checkout", sync_checkout)]),
                                client=client)
        try:
            with TestClient(app, raise_server_exceptions=False) as http:
                response = http.get("/checkout", headers={"X-POSTHOG-DISTINCT-ID": "visitor-7"})
            assert response.status_code == 500
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)
        [error] = sink.events(event="$exception")  # captured by the middleware, not the view
        assert error["distinct_id"] == "visitor-7"
        assert error["properties"]["$feature/new-checkout"] == "test"


async def page(request: Request) -> HTMLResponse:
    layout = (await posthog.aflags()).get_flag("new-checkout")
    return HTMLResponse(f"<h1>checkout: {layout}</h1>")


def test_flags_read_in_a_request_ride_on_its_page_view() -> None:
    with LocalSink(flags={"flags": {"new-checkout": "test"}}) as sink:
        client = Client(API_KEY, host=sink.url)
        app = PostHogMiddleware(Starlette(routes=[Route("/checkout", page)]), client=client,
                                capture_pageviews=True)
        try:
            with TestClient(app) as http:
                http.get("/checkout", headers={"X-POSTHOG-DISTINCT-ID": "visitor-7"})
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)
        [page_view] = sink.events(event="$pageview")
        assert page_view["properties"]["$feature/new-checkout"] == "test"
