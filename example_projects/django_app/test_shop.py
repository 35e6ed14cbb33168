"""The shop's analytics, tested the way you would test yours: with the ``posthog_events``
fixture, every event the app captures is recorded in memory and nothing is sent; with the
``posthog_flags`` fixture, the flags are the test's own and none is fetched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from posthog_integrations.testing import CapturedEvents, FlagOverrideControl

BROWSER = {"X-POSTHOG-DISTINCT-ID": "anonymous-1", "X-POSTHOG-SESSION-ID": "session-1"}


@pytest.fixture
def client() -> Client:
    # raise_request_exception=False: see the 500 a browser would get.
    return Client(headers=BROWSER, raise_request_exception=False)


def test_signing_up_identifies_the_new_user(client: Client,
                                            posthog_events: CapturedEvents) -> None:
    client.post("/signup", {"username": "ada", "plan": "pro"})
    event = posthog_events.one("signed up")
    assert event["distinct_id"] == "user-ada"
    assert event["properties"]["plan"] == "pro"
    assert event["properties"]["$session_id"] == "session-1"
    assert event["properties"]["$route"] == "/signup"


def test_the_browser_identity_rides_on_backend_events(client: Client,
                                                      posthog_events: CapturedEvents) -> None:
    client.post("/cart/42")
    event = posthog_events.one("item added", distinct_id="anonymous-1")
    assert event["properties"]["item_id"] == 42


def test_the_variant_shown_rides_on_the_event_of_that_request(
        client: Client, posthog_events: CapturedEvents,
        posthog_flags: FlagOverrideControl) -> None:
    posthog_flags.set({"checkout-layout": "classic"})
    response = client.post("/cart/42")
    assert response.json() == {"item_id": 42, "checkout_layout": "classic"}
    event = posthog_events.one("item added", distinct_id="anonymous-1")
    assert event["properties"]["$feature/checkout-layout"] == "classic"
    assert event["properties"]["$active_feature_flags"] == ["checkout-layout"]


@pytest.fixture
def tasks_run_eagerly() -> Iterator[None]:
    """Each task runs in the request that enqueues it, as ``CELERY_TASK_ALWAYS_EAGER=1`` does:
    no broker, no worker."""
    from shop.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_the_order_confirmation_task_belongs_to_the_visitor(
        client: Client, posthog_events: CapturedEvents, tasks_run_eagerly: None) -> None:
    order = client.post("/orders", {"item_id": 7}).json()
    event = posthog_events.one("order confirmation sent", distinct_id="anonymous-1")
    assert event["properties"]["order_id"] == order["order_id"]
    assert event["properties"]["item_id"] == 7
    assert event["properties"]["$session_id"] == "session-1"
    assert event["properties"]["celery_task_name"] == "shop.tasks.send_order_confirmation"
    # The task is not the request: the request's description stays with the request's events.
    assert "$current_url" not in event["properties"]
    assert posthog_events.one("order placed")["properties"]["$current_url"].endswith("/orders")


def test_a_failed_checkout_is_captured_and_answered_500(client: Client,
                                                        posthog_events: CapturedEvents) -> None:
    assert client.get("/checkout").status_code == 500
    error = posthog_events.one("$exception")
    chain = [entry["type"] for entry in error["properties"]["$exception_list"]]
    assert chain == ["RuntimeError", "ConnectionError"]


def test_the_report_streams_and_its_event_keeps_the_request(
        client: Client, posthog_events: CapturedEvents) -> None:
    response = client.get("/report")
    assert b"".join(response.streaming_content) == b"row 0\nrow 1\nrow 2\n"
    event = posthog_events.one("report streamed")
    assert (event["distinct_id"], event["properties"]["$route"]) == ("anonymous-1", "/report")


def test_a_page_view_per_html_page(client: Client, posthog_events: CapturedEvents) -> None:
    assert client.get("/").status_code == 200
    assert posthog_events.names() == ["$pageview"]
