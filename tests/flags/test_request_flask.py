"""A Flask view reads the request's flags with ``posthog_integrations.flags()``: the events and
the error of that request carry them, with one /flags request for the whole request."""

from __future__ import annotations

from flask import Flask
from flask import Request as FlaskRequest

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.local_wiring import ALL_LOCAL, SECRET, flags_requests, tenant_of


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


def test_a_flask_request_whose_flags_are_all_local_makes_no_flags_request() -> None:
    seen: list[object] = []

    def plan_of(request: object) -> dict[str, str]:
        seen.append(request)
        return {"plan": "pro"}

    with LocalSink(definitions=ALL_LOCAL) as sink:
        app = Flask(__name__)
        app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                           "POSTHOG_SECRET_KEY": SECRET,
                           "POSTHOG_FLAG_PERSON_PROPERTIES": plan_of,
                           "POSTHOG_FLAG_GROUPS": tenant_of})

        @app.route("/plan")
        def plan() -> dict[str, object]:
            values = posthog.flags().values()
            return {**values, "getter": posthog.get_feature_flag("pro-plan")}

        extension = PostHog(app)
        try:
            assert extension.client.load_flags(timeout=10)
            response = app.test_client().get("/plan", headers={"X-POSTHOG-DISTINCT-ID": "v-7"})
            assert response.json == {"everyone": True, "pro-plan": True, "company-beta": True,
                                     "getter": True}
        finally:
            extension.client.shutdown(timeout=2)
        assert flags_requests(sink) == []
        assert [type(request) for request in seen] == [FlaskRequest]  # once, Flask's request
