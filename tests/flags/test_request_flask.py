"""A Flask view reads the request's flags with ``posthog_integrations.flags()``: the events and
the error of that request carry them, with one /flags request for the whole request."""

from __future__ import annotations

from flask import Flask

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY


class CheckoutFailed(Exception):
    pass


def test_the_events_and_the_error_of_a_flask_request_carry_the_flags_it_read() -> None:
    with LocalSink(flags={"flags": {"new-checkout": "test", "dark-mode": True}}) as sink:
        app = Flask(__name__)
        app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url})

        @app.route("/checkout")
        def checkout() -> str:
            variant = posthog.flags().get_flag("new-checkout")
            posthog.capture("checkout started")
            assert posthog.flags().get_flag("new-checkout") == variant
            raise CheckoutFailed(str(variant))

        extension = PostHog(app)
        try:
            response = app.test_client().get("/checkout",
                                             headers={"X-POSTHOG-DISTINCT-ID": "v-7"})
            assert response.status_code == 500
            assert extension.client.flush(timeout=5)
        finally:
            extension.client.shutdown(timeout=2)
        [started] = sink.events(event="checkout started")
        [error] = sink.events(event="$exception")
        for event in (started, error):
            assert event["distinct_id"] == "v-7"
            assert event["properties"]["$feature/new-checkout"] == "test"
            assert event["properties"]["$active_feature_flags"] == ["new-checkout"]
            assert "$feature/dark-mode" not in event["properties"]
        assert len([r for r in sink.requests() if r.path.rstrip("/") == "/flags"]) == 1
