"""posthog_integrations.django.drf with real DRF views in the real project."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

pytest.importorskip("rest_framework")

import posthog_integrations as posthog
from posthog_integrations import ConfigurationError
from posthog_integrations.django import drf
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered
from tests.django.project.drf_urls import everything_is_a_500

IDENTITY = {"HTTP_X_POSTHOG_DISTINCT_ID": "user-1"}
JSON_ONLY = {"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
wrapped_own_handler = drf.wrap("tests.django.project.drf_urls.everything_is_a_500")
capturing_client_errors = drf.wrap("rest_framework.views.exception_handler",
                                   capture_client_errors=True)


def rest_framework(handler: str) -> Any:
    return override_settings(ROOT_URLCONF="tests.django.project.drf_urls",
                             REST_FRAMEWORK={**JSON_ONLY, "EXCEPTION_HANDLER": handler})


@pytest.fixture
def api() -> Iterator[None]:
    with rest_framework("posthog_integrations.django.drf.exception_handler"):
        yield


def exceptions(client: posthog.Client, sink: LocalSink) -> list[dict[str, Any]]:
    return delivered(client, sink, event="$exception")


@pytest.mark.usefixtures("api")
def test_an_api_view_500_is_captured_handled_once_with_the_request(
    default_client: posthog.Client, sink: LocalSink
) -> None:
    response = Client().get("/api/orders/7/", **IDENTITY)
    assert response.status_code == 500
    assert response.json() == {"detail": "order 7 could not be priced"}  # DRF's own answer
    [event] = exceptions(default_client, sink)
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert props["$exception_source"] == "django_rest_framework.exception_handler"
    assert props["$exception_level"] == "error"
    assert props["$response_status_code"] == 500
    assert (props["$request_path"], props["$route"]) == ("/api/orders/7/",
                                                         "/api/orders/<int:order>/")
    assert props["order"] == 7  # a tag the view set: the request's context
    [entry] = props["$exception_list"]
    assert entry["type"] == "APIException"
    assert entry["mechanism"]["type"] == "middleware"
    assert entry["mechanism"]["handled"] is True


@pytest.mark.usefixtures("api")
def test_a_viewset_5xx_is_captured(default_client: posthog.Client, sink: LocalSink) -> None:
    assert Client().get("/api/payments/").status_code == 503
    assert Client().get("/api/payments/3/").status_code == 200
    [event] = exceptions(default_client, sink)
    assert event["properties"]["$exception_list"][0]["type"] == "PaymentsDown"
    assert event["properties"]["$response_status_code"] == 503


@pytest.mark.usefixtures("api")
def test_what_drf_re_raises_is_left_to_the_middleware(default_client: posthog.Client,
                                                      sink: LocalSink) -> None:
    response = Client(raise_request_exception=False).get("/api/ledger/", **IDENTITY)
    assert response.status_code == 500
    [event] = exceptions(default_client, sink)
    props = event["properties"]
    assert props["$exception_source"] != drf.SOURCE
    assert props["$exception_list"][0]["type"] == "LedgerBroken"
    assert props["$exception_list"][0]["mechanism"]["handled"] is False


@pytest.mark.usefixtures("api")
def test_client_errors_are_not_captured_by_default(default_client: posthog.Client,
                                                   sink: LocalSink) -> None:
    assert Client().post("/api/orders/7/").status_code == 400
    assert exceptions(default_client, sink) == []


def test_client_errors_are_captured_as_warnings_when_asked(default_client: posthog.Client,
                                                           sink: LocalSink) -> None:
    with rest_framework("tests.django.test_drf.capturing_client_errors"):
        assert Client().post("/api/orders/7/").status_code == 400
    [event] = exceptions(default_client, sink)
    props = event["properties"]
    assert (props["$exception_level"], props["$response_status_code"]) == ("warning", 400)
    assert props["$exception_list"][0]["type"] == "ValidationError"


def test_a_project_handler_wrapped_by_its_dotted_path(default_client: posthog.Client,
                                                      sink: LocalSink) -> None:
    with rest_framework("tests.django.test_drf.wrapped_own_handler"):
        response = Client().get("/api/ledger/", **IDENTITY)
    assert (response.status_code, response.json()) == (500, {"error": "LedgerBroken"})
    [event] = exceptions(default_client, sink)  # handled by the project: no middleware event
    props = event["properties"]
    assert props["$exception_source"] == drf.SOURCE
    assert props["$exception_list"][0]["mechanism"]["handled"] is True
    assert event["distinct_id"] == "user-1"


def test_a_project_handler_wrapped_as_a_callable(default_client: posthog.Client,
                                                 sink: LocalSink) -> None:
    handler = drf.wrap(everything_is_a_500)
    response = handler(ValueError("boom"), {})
    assert response.status_code == 500
    [event] = exceptions(default_client, sink)  # outside a request: the default client
    assert event["properties"]["$exception_source"] == drf.SOURCE


def test_with_capture_logging_a_drf_500_is_still_one_event(sink: LocalSink) -> None:
    client = posthog.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02,
                               capture_logging=logging.ERROR)
    try:
        with rest_framework("posthog_integrations.django.drf.exception_handler"):
            assert Client().get("/api/orders/7/").status_code == 500
        [event] = exceptions(client, sink)
        assert event["properties"]["$exception_source"] == drf.SOURCE
    finally:
        posthog.shutdown()


def test_without_capture_exceptions_nothing_is_captured(sink: LocalSink) -> None:
    with override_settings(POSTHOG={"API_KEY": API_KEY, "HOST": sink.url,
                                    "CAPTURE_EXCEPTIONS": False}):
        from django.apps import apps
        from django.test import Client as DjangoClient

        apps.get_app_config("posthog_integrations").ready()
        try:
            with rest_framework("posthog_integrations.django.drf.exception_handler"):
                assert DjangoClient().get("/api/orders/7/").status_code == 500
            assert posthog.flush(5)
            assert sink.events(event="$exception") == []
        finally:
            posthog.shutdown()


@pytest.mark.parametrize("handler", [None, 42])
def test_wrapping_something_that_is_no_handler_is_a_configuration_error(handler: Any) -> None:
    with pytest.raises(ConfigurationError, match="exception handler or its dotted path"):
        drf.wrap(handler)


def test_the_module_imports_drf_only_when_an_exception_is_handled() -> None:
    code = ("import sys, django; django.setup(); import posthog_integrations.django.drf; "
            "print('rest_framework' in sys.modules)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django.project.settings"}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert ran.stdout.strip() == "False"
