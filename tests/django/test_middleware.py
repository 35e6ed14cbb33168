"""The Django middleware in a real project, under the WSGI and the ASGI handler."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from posthog_integrations import Client as PostHogClient
from posthog_integrations.sink import LocalSink
from tests.conftest import delivered
from tests.django.login import alogin
from tests.django.project.views import ViewFailed

IDENTITY = {"HTTP_X_POSTHOG_DISTINCT_ID": "user-1", "HTTP_X_POSTHOG_SESSION_ID": "session-1"}


@pytest.fixture
def user() -> User:
    found, _ = User.objects.get_or_create(username="ada")
    return found


def test_a_view_capture_carries_identity_route_and_path(default_client: PostHogClient,
                                                        sink: LocalSink) -> None:
    response = Client().get("/items/7/?token=secret", **IDENTITY)
    assert response.content == b"item 7"
    [event] = delivered(default_client, sink, event="item viewed")
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert props["$session_id"] == "session-1"
    assert props["$route"] == "/items/<int:item_id>/"
    assert props["$request_path"] == "/items/7/"
    assert props["$current_url"] == "http://testserver/items/7/"


def test_routes_under_include_are_joined(default_client: PostHogClient, sink: LocalSink) -> None:
    Client().get("/api/items/3/")
    [event] = delivered(default_client, sink, event="item viewed")
    assert event["properties"]["$route"] == "/api/items/<int:item_id>/"


def test_the_root_route_is_a_slash(default_client: PostHogClient, sink: LocalSink) -> None:
    Client().get("/")
    [event] = delivered(default_client, sink, event="item viewed")
    assert event["properties"]["$route"] == "/"


def test_the_logged_in_user_identifies_requests_with_or_without_the_header(
    default_client: PostHogClient, sink: LocalSink, user: User
) -> None:
    browser = Client()
    browser.force_login(user)
    browser.get("/items/1/")
    with CaptureQueriesContext(connection) as queries:
        browser.get("/items/2/", **IDENTITY)
    assert len(queries) == 2  # the session and the user, looked up once for the capture
    events = delivered(default_client, sink, event="item viewed")
    assert [e["distinct_id"] for e in events] == [str(user.pk), str(user.pk)]
    assert all("email" not in e["properties"] for e in events)


def test_an_anonymous_request_without_the_header_is_personless(default_client: PostHogClient,
                                                               sink: LocalSink) -> None:
    Client().get("/items/1/")
    [event] = delivered(default_client, sink, event="item viewed")
    assert event["properties"]["$process_person_profile"] is False


def test_a_view_exception_is_captured_once_and_still_raised(default_client: PostHogClient,
                                                            sink: LocalSink) -> None:
    with pytest.raises(ViewFailed) as raised:
        Client().get("/fail/", **IDENTITY)
    assert isinstance(raised.value.__cause__, KeyError)
    [error] = delivered(default_client, sink, event="$exception")
    props = error["properties"]
    assert error["distinct_id"] == "user-1"
    assert [e["type"] for e in props["$exception_list"]] == ["ViewFailed", "KeyError"]
    assert (props["$request_path"], props["$route"]) == ("/fail/", "/fail/")
    assert props["$exception_source"] == "django.middleware"


def test_the_500_response_is_unchanged(default_client: PostHogClient, sink: LocalSink) -> None:
    response = Client(raise_request_exception=False).get("/fail/")
    assert response.status_code == 500
    assert len(delivered(default_client, sink, event="$exception")) == 1


def test_a_manual_capture_then_raise_is_one_event(default_client: PostHogClient,
                                                  sink: LocalSink) -> None:
    with pytest.raises(ViewFailed):
        Client().get("/captured-then-raised/", **IDENTITY)
    [error] = delivered(default_client, sink, event="$exception")
    assert error["properties"]["$exception_list"][0]["mechanism"]["handled"] is True


def test_an_exception_raised_by_an_inner_middleware_is_captured(default_client: PostHogClient,
                                                                sink: LocalSink) -> None:
    with pytest.raises(RuntimeError, match="middleware failed"):
        Client().get("/middleware-fails/", **IDENTITY)
    [error] = delivered(default_client, sink, event="$exception")
    assert error["distinct_id"] == "user-1"
    assert error["properties"]["$exception_message"] == "middleware failed"


@pytest.mark.parametrize(("path", "status"), [("/missing/", 404), ("/forbidden/", 403),
                                              ("/nowhere/", 404)])
def test_expected_errors_are_not_exceptions(path: str, status: int,
                                            default_client: PostHogClient,
                                            sink: LocalSink) -> None:
    assert Client().get(path).status_code == status
    assert delivered(default_client, sink, event="$exception") == []


def test_a_streamed_response_keeps_the_context(default_client: PostHogClient,
                                               sink: LocalSink) -> None:
    response = Client().get("/stream/", **IDENTITY)
    assert b"".join(response.streaming_content) == b"first\nsecond\n"
    [event] = delivered(default_client, sink, event="mid stream")
    assert event["distinct_id"] == "user-1"
    assert event["properties"]["$route"] == "/stream/"


MIDDLEWARE_THREADS: list[int] = []


def record_middleware_thread(request: Any) -> bool:
    MIDDLEWARE_THREADS.append(threading.get_ident())
    return True


def test_async_views_stay_on_the_event_loop(default_client: PostHogClient, sink: LocalSink,
                                            user: User) -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings

    posthog_settings = {**django_settings.POSTHOG,
                        "REQUEST_FILTER": "tests.django.test_middleware.record_middleware_thread"}
    MIDDLEWARE_THREADS.clear()

    async def run() -> list[Any]:
        client = AsyncClient()
        await alogin(client, user)
        first = await client.get("/async/items/5/", headers={"X-PostHog-Distinct-Id": "a-1"})
        second = await client.get("/async/items/6/")
        return [first, second]

    with override_settings(POSTHOG=posthog_settings):
        responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200, 200]
    assert all(r["X-Async-Neighbour"] == "yes" for r in responses)
    # Our middleware ran on the event loop's thread too: it forced no sync hop.
    assert set(MIDDLEWARE_THREADS) == {threading.get_ident()}
    events = delivered(default_client, sink, event="async item viewed")
    assert [e["distinct_id"] for e in events] == [str(user.pk), str(user.pk)]  # not "a-1"
    # The view ran on the event loop's thread: no middleware forced a sync hop.
    assert {e["properties"]["thread"] for e in events} == {threading.get_ident()}
    assert events[0]["properties"]["$route"] == "/async/items/<int:item_id>/"


def test_async_exceptions_and_streams(default_client: PostHogClient, sink: LocalSink) -> None:
    async def run() -> bytes:
        client = AsyncClient()
        with pytest.raises(ViewFailed):
            await client.get("/async/fail/", headers={"X-POSTHOG-DISTINCT-ID": "a-2"})
        response = await client.get("/async/stream/", headers={"X-POSTHOG-DISTINCT-ID": "a-3"})
        return b"".join([chunk async for chunk in response.streaming_content])

    assert asyncio.run(run()) == b"first\nsecond\n"
    [error] = delivered(default_client, sink, event="$exception")
    assert error["distinct_id"] == "a-2"
    assert error["properties"]["$route"] == "/async/fail/"
    [streamed] = sink.events(event="async mid stream")
    assert streamed["distinct_id"] == "a-3"


def test_64_concurrent_threaded_requests_are_isolated(default_client: PostHogClient,
                                                      sink: LocalSink) -> None:
    def request(number: int) -> bytes:
        response = Client().get(f"/items/{number}/",
                                HTTP_X_POSTHOG_DISTINCT_ID=f"user-{number}")
        return bytes(response.content)

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(request, range(64)))
    assert answers == [f"item {n}".encode() for n in range(64)]
    events = delivered(default_client, sink, event="item viewed")
    assert len(events) == 64
    assert len({e["properties"]["thread"] for e in events}) > 1
    for event in events:
        assert event["distinct_id"] == f"user-{event['properties']['item']}"
    assert threading.active_count() < 200


def official_extra_tags(request: Any) -> dict[str, Any]:
    return {"tenant": request.headers.get("X-Tenant")}


def test_the_drop_in_alias_reads_the_official_settings(make_client: Any,
                                                       sink: LocalSink) -> None:
    from django.test import override_settings

    own_client = make_client()
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "posthog_integrations.django.PosthogContextMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware, POSTHOG_MW_CLIENT=own_client,
                           POSTHOG_MW_EXTRA_TAGS=official_extra_tags,
                           POSTHOG_MW_CAPTURE_TRACING_HEADERS=False):
        Client().get("/items/4/", HTTP_X_TENANT="acme", **IDENTITY)
        with pytest.raises(ViewFailed):
            Client().get("/fail/")
    events = delivered(own_client, sink)
    assert [e["event"] for e in events] == ["item viewed", "$exception"]
    assert events[0]["properties"]["tenant"] == "acme"
    assert events[0]["distinct_id"] != "user-1"  # tracing headers turned off the official way


def test_pageviews_when_enabled(default_client: PostHogClient, sink: LocalSink) -> None:
    from django.conf import settings
    from django.test import override_settings

    with override_settings(POSTHOG={**settings.POSTHOG, "CAPTURE_PAGEVIEWS": True}):
        Client().get("/items/9/", **IDENTITY)
        Client().get("/missing/", **IDENTITY)
    [pageview] = delivered(default_client, sink, event="$pageview")
    assert pageview["distinct_id"] == "user-1"
    assert pageview["properties"]["$route"] == "/items/<int:item_id>/"
    assert pageview["properties"]["$response_status_code"] == 200
