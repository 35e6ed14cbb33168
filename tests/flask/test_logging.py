"""``POSTHOG_CAPTURE_LOGGING`` in a real Flask app: what Flask logs is captured once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from posthog_integrations.flask import PostHog
from posthog_integrations.logging import PostHogHandler
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered

IDENTITY = {"X-POSTHOG-DISTINCT-ID": "user-1"}


class CheckoutFailed(Exception):
    pass


@pytest.fixture
def app(sink: LocalSink) -> Iterator[Flask]:
    app = Flask(__name__)  # not app.testing: Flask logs what fails, as in production
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                       "POSTHOG_RETRY_BASE_DELAY": 0.02, "POSTHOG_CAPTURE_LOGGING": True})

    @app.route("/checkout/<int:order>")
    def checkout(order: int) -> str:
        raise CheckoutFailed(f"order {order}")

    @app.route("/logged")
    def logged() -> str:
        try:
            {}["basket"]
        except KeyError:
            app.logger.exception("the basket was gone")
        return "recovered"

    PostHog(app)
    yield app
    client = app.extensions["posthog"].client
    client.shutdown(timeout=2)
    assert not any(isinstance(h, PostHogHandler) and h.client is client
                   for h in logging.getLogger().handlers)


def test_a_failure_flask_logs_is_one_event_the_extension_s(
    app: Flask, sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.extensions["posthog"].client
    assert client.options.capture_logging == logging.ERROR
    response = app.test_client().get("/checkout/7", headers=IDENTITY)
    assert response.status_code == 500
    # Flask logged "Exception on /checkout/7 [GET]" with the exception...
    assert [r.exc_info is not None for r in caplog.records
            if r.getMessage().startswith("Exception on /checkout/7")] == [True]
    # ...and it is one event: the extension's, captured first.
    [event] = delivered(client, sink, event="$exception")
    props = event["properties"]
    assert props["$exception_source"] != "python.logging"
    assert props["$exception_list"][0]["mechanism"]["handled"] is False
    assert event["distinct_id"] == "user-1"


def test_an_exception_a_view_logs_carries_the_request_context(app: Flask,
                                                              sink: LocalSink) -> None:
    response = app.test_client().get("/logged", headers=IDENTITY)
    assert response.data == b"recovered"
    [event] = delivered(app.extensions["posthog"].client, sink, event="$exception")
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert (props["$exception_source"], props["$log_message"]) == ("python.logging",
                                                                   "the basket was gone")
    assert props["$logger_name"] == app.logger.name
    assert props["$route"] == "/logged"
