"""Identity you can trust in Django: the logged-in user wins over the tracing header, sync and
async, and is looked up only when the request captures or reads its identity."""

from __future__ import annotations

import asyncio
from typing import Any

import django
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

import posthog_integrations as posthog
from posthog_integrations import Client as PostHogClient
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered
from tests.django.login import alogin

# Someone else's id in the header, as a client picking its own flags would send it.
VICTIM = {"HTTP_X_POSTHOG_DISTINCT_ID": "victim-1", "HTTP_X_POSTHOG_SESSION_ID": "session-9"}
ASYNC_VICTIM = {"X-PostHog-Distinct-Id": "victim-1", "X-PostHog-Session-Id": "session-9"}


@pytest.fixture
def member() -> User:
    found, _ = User.objects.get_or_create(username="member")
    return found


def test_a_logged_in_user_claiming_another_id_is_attributed_to_themself(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    browser = Client()
    browser.force_login(member)
    assert browser.get("/identity/", **VICTIM).json() == {"distinct_id": str(member.pk)}
    assert Client().get("/identity/", **VICTIM).json() == {"distinct_id": "victim-1"}
    events = delivered(default_client, sink, event="identity read")
    assert [e["distinct_id"] for e in events] == [str(member.pk), "victim-1"]
    assert {e["properties"]["$session_id"] for e in events} == {"session-9"}


def test_an_async_logged_in_user_claiming_another_id_is_attributed_to_themself(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    async def run() -> list[Any]:
        logged_in = AsyncClient()
        await alogin(logged_in, member)
        return [(await logged_in.get("/async/identity/", headers=ASYNC_VICTIM)).json(),
                (await AsyncClient().get("/async/identity/", headers=ASYNC_VICTIM)).json()]

    assert asyncio.run(run()) == [{"distinct_id": str(member.pk)}, {"distinct_id": "victim-1"}]
    events = delivered(default_client, sink, event="identity read")
    assert [e["distinct_id"] for e in events] == [str(member.pk), "victim-1"]
    assert {e["properties"]["$session_id"] for e in events} == {"session-9"}


def test_a_request_that_captures_nothing_never_looks_up_its_user(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    browser = Client()
    browser.force_login(member)
    with CaptureQueriesContext(connection) as queries:
        answers = [browser.get("/user-untouched/").json(),
                   browser.get("/user-untouched/", **VICTIM).json()]
    assert answers == [{"user_loaded": False}] * 2
    assert len(queries) == 0  # neither the session nor the user was read
    with CaptureQueriesContext(connection) as queries:
        browser.get("/identity/", **VICTIM)
    assert len(queries) == 2  # the session, then the user: once, at the first read


def test_an_async_request_that_captures_nothing_never_looks_up_its_user(
    default_client: PostHogClient, member: User
) -> None:
    async def run() -> list[Any]:
        browser = AsyncClient()
        await alogin(browser, member)
        return [(await browser.get("/async/user-untouched/")).json(),
                (await browser.get("/async/user-untouched/", headers=ASYNC_VICTIM)).json()]

    assert asyncio.run(run()) == [{"user_loaded": False}] * 2


def test_identify_user_off_leaves_the_header_in_charge(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings

    browser = Client()
    browser.force_login(member)
    with override_settings(POSTHOG={**django_settings.POSTHOG, "IDENTIFY_USER": False}):
        assert browser.get("/identity/", **VICTIM).json() == {"distinct_id": "victim-1"}


def test_under_the_wsgi_middleware_the_django_user_still_wins(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    """Django's middleware passes the request through to the outer WSGI middleware's context,
    and lets the logged-in user win there too."""
    from django.conf import settings as django_settings
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client as WerkzeugClient

    from posthog_integrations.wsgi import PostHogMiddleware as WSGIMiddleware

    session = Client()
    session.force_login(member)
    cookie = session.cookies[django_settings.SESSION_COOKIE_NAME].value
    browser = WerkzeugClient(WSGIMiddleware(WSGIHandler(), client=default_client))
    browser.set_cookie(django_settings.SESSION_COOKIE_NAME, cookie)
    headers = {"X-POSTHOG-DISTINCT-ID": "victim-1", "X-POSTHOG-SESSION-ID": "session-9"}
    assert browser.get("/identity/", headers=headers).json == {"distinct_id": str(member.pk)}
    [event] = delivered(default_client, sink, event="identity read")
    assert event["distinct_id"] == str(member.pk)
    assert event["properties"]["$session_id"] == "session-9"


@pytest.mark.skipif(django.VERSION < (5, 0), reason="request.auser() came in Django 5.0")
def test_an_async_view_that_loaded_its_user_needs_no_second_lookup(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    async def run() -> Any:
        browser = AsyncClient()
        await alogin(browser, member)
        return (await browser.get("/async/identity-after-auser/", headers=ASYNC_VICTIM)).json()

    # The user request.auser() loaded is used: request.user was never loaded in a worker.
    assert asyncio.run(run()) == {"distinct_id": str(member.pk), "sync_user_loaded": False}
    [event] = delivered(default_client, sink, event="identity read")
    assert event["distinct_id"] == str(member.pk)


def test_a_user_set_by_later_authentication_middleware_wins(
    default_client: PostHogClient, sink: LocalSink, member: User
) -> None:
    answer = Client().get("/identity/", HTTP_X_TEST_TOKEN=member.username, **VICTIM).json()
    assert answer == {"distinct_id": str(member.pk)}
    [event] = delivered(default_client, sink, event="identity read")
    assert event["distinct_id"] == str(member.pk)


# The header's id would get "test"; everyone else, the logged-in member included, "control".
FLAGS = {"flags": {"new-checkout": "control"},
         "distinct_ids": {"victim-1": {"new-checkout": "test"}}}


def test_a_logged_in_user_claiming_another_id_gets_their_own_flags(member: User) -> None:
    with LocalSink(flags=FLAGS) as flag_sink:
        posthog.configure(api_key=API_KEY, host=flag_sink.url)
        try:
            browser = Client()
            browser.force_login(member)
            assert browser.get("/flag/", **VICTIM).json() == {"new-checkout": "control"}
            assert Client().get("/flag/", **VICTIM).json() == {"new-checkout": "test"}

            async def run() -> Any:
                logged_in = AsyncClient()
                await alogin(logged_in, member)
                return (await logged_in.get("/async/flag/", headers=ASYNC_VICTIM)).json()

            assert asyncio.run(run()) == {"new-checkout": "control"}
        finally:
            posthog.shutdown()
        asked_for = [r.body["distinct_id"] for r in flag_sink.requests()
                     if r.path.rstrip("/") == "/flags"]
        assert asked_for == [str(member.pk), "victim-1", str(member.pk)]
