"""End to end: a Starlette view reads the request's flags with ``await aflags()``; the event it
captures next reaches the local endpoint with them, for the identity the request carried."""

from __future__ import annotations

import logging

import pytest
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
from tests.flags.local_wiring import ALL_LOCAL, SECRET, flags_requests, plan_of


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


async def plan_page(request: Request) -> JSONResponse:
    flags = await posthog.aflags()
    return JSONResponse({**flags.values(), "getter": posthog.get_feature_flag("company-beta")})


def test_a_starlette_request_whose_flags_are_all_local_makes_no_flags_request() -> None:
    scopes: list[dict[str, object]] = []

    def tenant_of_scope(scope: dict[str, object]) -> dict[str, str]:
        scopes.append(scope)
        return {"company": "acme"}

    with LocalSink(definitions=ALL_LOCAL) as sink:
        client = Client(API_KEY, host=sink.url, secret_key=SECRET)
        app = PostHogMiddleware(Starlette(routes=[Route("/plan", plan_page)]), client=client,
                                flag_person_properties=plan_of, flag_groups=tenant_of_scope)
        try:
            assert client.load_flags(timeout=10)
            with TestClient(app) as http:
                response = http.get("/plan", headers={"X-POSTHOG-DISTINCT-ID": "visitor-7"})
            assert response.json() == {"everyone": True, "pro-plan": True,
                                       "company-beta": True, "getter": True}
        finally:
            client.shutdown(timeout=2)
        assert flags_requests(sink) == []
        assert [scope["path"] for scope in scopes] == ["/plan"]  # once, with the ASGI scope


def test_flag_hooks_that_fail_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    def broken_groups(scope: object) -> dict[str, str]:
        raise LookupError("no tenant")

    caplog.set_level(logging.DEBUG, logger="posthog_integrations")  # a repeat logs at debug
    with LocalSink(definitions=ALL_LOCAL, flags={"flags": {"pro-plan": "remote"}}) as sink:
        client = Client(API_KEY, host=sink.url, secret_key=SECRET)
        app = PostHogMiddleware(Starlette(routes=[Route("/plan", plan_page)]), client=client,
                                flag_person_properties=lambda scope: ["pro"],
                                flag_groups=broken_groups)
        try:
            assert client.load_flags(timeout=10)
            with TestClient(app) as http:
                response = http.get("/plan", headers={"X-POSTHOG-DISTINCT-ID": "visitor-7"})
            assert response.json() == {"everyone": True, "pro-plan": "remote",
                                       "company-beta": False, "getter": False}
        finally:
            client.shutdown(timeout=2)
        assert [r.body["flag_keys_to_evaluate"] for r in flags_requests(sink)] == [["pro-plan"]]
        logged = caplog.text
        assert "the flag_groups hook raised" in logged
        assert "the flag_person_properties hook raised" in logged
