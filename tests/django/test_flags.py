"""A Django view reads the request's flags with ``flags()`` (or ``await aflags()``): the events
and the error of that request carry them, with one /flags request for the whole request."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.local_wiring import ALL_LOCAL, SECRET, flags_requests

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


def plan_view(request: HttpRequest) -> JsonResponse:
    values = posthog.flags().values()
    return JsonResponse({**values, "getter": posthog.get_feature_flag("pro-plan")})


urlpatterns = [path("plan/", plan_view)]
HTTP_REQUESTS: list[object] = []


def tenant_of_request(request: object) -> dict[str, str]:
    HTTP_REQUESTS.append(request)
    return {"company": "acme"}


def test_a_request_whose_flags_are_all_local_makes_no_flags_request() -> None:
    HTTP_REQUESTS.clear()
    with LocalSink(definitions=ALL_LOCAL) as sink, override_settings(
        ROOT_URLCONF=__name__,
        POSTHOG={**settings.POSTHOG, "HOST": sink.url, "SECRET_KEY": SECRET,
                 "FLAG_PERSON_PROPERTIES": "tests.flags.local_wiring.plan_of",
                 "FLAG_GROUPS": tenant_of_request},
    ):
        client = posthog.configure(api_key=API_KEY, host=sink.url, secret_key=SECRET)
        try:
            assert client.load_flags(timeout=10)
            response = Client().get("/plan/", headers=HEADERS)
            assert response.json() == {"everyone": True, "pro-plan": True,
                                       "company-beta": True, "getter": True}
        finally:
            posthog.shutdown()
        assert flags_requests(sink) == []
        assert [type(request) for request in HTTP_REQUESTS] == [WSGIRequest]  # once
