"""``POSTHOG["CAPTURE_LOGGING"]`` in the real project: what Django logs is captured once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.test import Client, override_settings

import posthog_integrations as posthog
from posthog_integrations.core.default_client import default_client
from posthog_integrations.logging import PostHogHandler
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered

IDENTITY = {"HTTP_X_POSTHOG_DISTINCT_ID": "user-1"}


@pytest.fixture
def logging_client(sink: LocalSink) -> Iterator[posthog.Client]:
    """The default client as the app's ready() configures it from settings.POSTHOG."""
    settings = {"API_KEY": API_KEY, "HOST": sink.url, "RETRY_BASE_DELAY": 0.02,
                "CAPTURE_LOGGING": True}
    with override_settings(POSTHOG=settings, ROOT_URLCONF="tests.django.project.logging_urls"):
        apps.get_app_config("posthog_integrations").ready()
        client = default_client.get()
        yield client
    posthog.shutdown()
    assert not any(isinstance(handler, PostHogHandler) and handler.client is client
                   for handler in logging.getLogger().handlers)


def test_the_setting_installs_a_root_handler(logging_client: posthog.Client) -> None:
    assert logging_client.options.capture_logging == logging.ERROR
    assert [h for h in logging.getLogger().handlers
            if isinstance(h, PostHogHandler) and h.client is logging_client]


def test_a_500_logged_by_django_is_one_event_the_middleware_s(
    logging_client: posthog.Client, sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="django.request")
    response = Client(raise_request_exception=False).get("/fail/", **IDENTITY)
    assert response.status_code == 500
    # Django logged the failure with its exception, and the handler saw that record...
    assert [r.exc_info is not None for r in caplog.records if r.name == "django.request"] == [True]
    # ...yet the exception is one event: the middleware's, captured first.
    [event] = delivered(logging_client, sink, event="$exception")
    assert event["properties"]["$exception_source"] != "python.logging"
    assert event["properties"]["$exception_list"][0]["mechanism"]["handled"] is False
    assert event["distinct_id"] == "user-1"


def test_an_exception_a_view_logs_carries_the_request_context(
    logging_client: posthog.Client, sink: LocalSink
) -> None:
    response = Client().get("/logged/", **IDENTITY)
    assert response.content == b"recovered"
    [event] = delivered(logging_client, sink, event="$exception")
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert (props["$exception_source"], props["$exception_level"]) == ("python.logging", "error")
    assert (props["$log_message"], props["$logger_name"]) == ("the basket was gone",
                                                              "tests.django.project")
    assert props["$request_path"] == "/logged/"
    assert props["$exception_list"][0]["type"] == "KeyError"
