"""A Django view reads the request's flags with ``flags()`` (or ``await aflags()``): the events
and the error of that request carry them, with one /flags request for the whole request."""

from __future__ import annotations

import asyncio

import pytest
from django.test import AsyncClient, Client

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY

FLAGS = {"flags": {"new-checkout": "test", "dark-mode": True}}
HEADERS = {"X-PostHog-Distinct-Id": "v-7"}


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_events_and_the_error_of_a_request_carry_the_flags_it_read(flavour: str) -> None:
    with LocalSink(flags=FLAGS) as sink:
        client = posthog.configure(api_key=API_KEY, host=sink.url)
        try:
            if flavour == "sync":
                response = Client(raise_request_exception=False).get(
                    "/checkout-with-flags/", headers=HEADERS)
            else:
                response = asyncio.run(AsyncClient(raise_request_exception=False).get(
                    "/async/checkout-with-flags/", headers=HEADERS))
            assert response.status_code == 500
            assert client.flush(timeout=5)
        finally:
            posthog.shutdown()
        [started] = sink.events(event="checkout started")
        [error] = sink.events(event="$exception")
        for event in (started, error):
            assert event["distinct_id"] == "v-7"
            assert event["properties"]["$feature/new-checkout"] == "test"
            assert event["properties"]["$active_feature_flags"] == ["new-checkout"]
            assert "$feature/dark-mode" not in event["properties"]
        assert len([r for r in sink.requests() if r.path.rstrip("/") == "/flags"]) == 1
