"""The exception spec for the Django middleware, in the test project, served every way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient, Client

from posthog_integrations import Client as PostHogClient
from posthog_integrations.sink import LocalSink
from tests.conftest import delivered
from tests.django.project.views import ViewFailed
from tests.exceptions.spec_rows import DJANGO, assert_row


def chain(event: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["mechanism"].get("source"))
            for e in event["properties"]["$exception_list"]]


def test_a_view_exception(default_client: PostHogClient, sink: LocalSink) -> None:
    with pytest.raises(ViewFailed):
        Client().get("/fail/")
    [event] = delivered(default_client, sink, event="$exception")
    assert_row(event, DJANGO)
    assert chain(event) == [("ViewFailed", None), ("KeyError", "cause")]


def test_an_async_view_exception(default_client: PostHogClient, sink: LocalSink) -> None:
    with pytest.raises(ViewFailed):
        asyncio.run(AsyncClient().get("/async/fail/"))
    [event] = delivered(default_client, sink, event="$exception")
    assert_row(event, DJANGO)


def test_a_middleware_exception_seen_by_got_request_exception(
        default_client: PostHogClient, sink: LocalSink) -> None:
    response = Client(raise_request_exception=False).get("/middleware-fails/")
    assert response.status_code == 500
    [event] = delivered(default_client, sink, event="$exception")
    assert_row(event, DJANGO)
    assert chain(event) == [("RuntimeError", None)]


def test_under_the_wsgi_middleware_django_is_still_the_source(
        default_client: PostHogClient, sink: LocalSink) -> None:
    """Our WSGI middleware holds the request's context; Django's middleware caught the error."""
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client as WerkzeugClient

    from posthog_integrations.wsgi import PostHogMiddleware as WSGIMiddleware

    browser = WerkzeugClient(WSGIMiddleware(WSGIHandler(), client=default_client))
    assert browser.get("/fail/").status_code == 500
    [event] = delivered(default_client, sink, event="$exception")
    assert_row(event, DJANGO)
    assert event["properties"]["$request_path"] == "/fail/"
