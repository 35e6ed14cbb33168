"""A FastAPI endpoint reads the request's flags with ``await aflags()``: its events and its
error carry them, with one /flags request for the whole request."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY


class CheckoutFailed(Exception):
    pass


def test_the_events_and_the_error_of_a_fastapi_request_carry_the_flags_it_read() -> None:
    with LocalSink(flags={"flags": {"new-checkout": "test", "dark-mode": True}}) as sink:
        client = Client(API_KEY, host=sink.url)
        app = FastAPI()

        @app.post("/checkout")
        async def checkout() -> None:
            variant = (await posthog.aflags()).get_flag("new-checkout")
            posthog.capture("checkout started")
            raise CheckoutFailed(str(variant))

        app.add_middleware(PostHogMiddleware, client=client)
        try:
            with TestClient(app, raise_server_exceptions=False) as http:
                response = http.post("/checkout", headers={"X-POSTHOG-DISTINCT-ID": "v-7"})
            assert response.status_code == 500
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)
        [started] = sink.events(event="checkout started")
        [error] = sink.events(event="$exception")
        for event in (started, error):
            assert event["distinct_id"] == "v-7"
            assert event["properties"]["$feature/new-checkout"] == "test"
            assert "$feature/dark-mode" not in event["properties"]
        assert len([r for r in sink.requests() if r.path.rstrip("/") == "/flags"]) == 1
