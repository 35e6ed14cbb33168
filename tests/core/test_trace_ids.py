"""$trace_id and $span_id from the active OpenTelemetry span, on every event."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory, delivered


@pytest.fixture
def tracer() -> trace.Tracer:
    # A provider of the test's own: the global one is left alone.
    return TracerProvider().get_tracer("tests.trace_ids")


def ids_of(span: trace.Span) -> dict[str, str]:
    context = span.get_span_context()
    return {"$trace_id": f"{context.trace_id:032x}", "$span_id": f"{context.span_id:016x}"}


def trace_properties(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event["properties"].items()
            if key in ("$trace_id", "$span_id")}


def test_capture_and_capture_exception_carry_the_active_span(
    sink: LocalSink, make_client: ClientFactory, tracer: trace.Tracer
) -> None:
    client = make_client()
    with tracer.start_as_current_span("checkout") as span:
        client.capture("order placed", distinct_id="user-1")
        try:
            raise ValueError("card declined")
        except ValueError as error:
            client.capture_exception(error, distinct_id="user-1")
        expected = ids_of(span)
    events = delivered(client, sink)
    assert [event["event"] for event in events] == ["order placed", "$exception"]
    for event in events:
        assert trace_properties(event) == expected
    assert len(expected["$trace_id"]) == 32
    assert len(expected["$span_id"]) == 16
    assert expected["$trace_id"] == expected["$trace_id"].lower()


def test_the_innermost_span_is_the_one_reported(
    sink: LocalSink, make_client: ClientFactory, tracer: trace.Tracer
) -> None:
    client = make_client()
    with tracer.start_as_current_span("request") as outer:
        with tracer.start_as_current_span("query") as inner:
            client.capture("queried", distinct_id="user-1")
        client.capture("responded", distinct_id="user-1")
    queried, responded = delivered(client, sink)
    assert trace_properties(queried) == ids_of(inner)
    assert trace_properties(responded) == ids_of(outer)
    assert queried["properties"]["$trace_id"] == responded["properties"]["$trace_id"]


def test_no_span_no_ids(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("outside", distinct_id="user-1")
    [event] = delivered(client, sink)
    assert trace_properties(event) == {}


def test_an_invalid_span_gives_no_ids(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    with trace.use_span(trace.INVALID_SPAN):
        client.capture("invalid span", distinct_id="user-1")
    [event] = delivered(client, sink)
    assert trace_properties(event) == {}


def test_caller_values_win(
    sink: LocalSink, make_client: ClientFactory, tracer: trace.Tracer
) -> None:
    client = make_client()
    with tracer.start_as_current_span("job") as span:
        client.capture("mine", distinct_id="user-1", properties={"$trace_id": "from-caller"})
    [event] = delivered(client, sink)
    assert event["properties"]["$trace_id"] == "from-caller"
    assert event["properties"]["$span_id"] == ids_of(span)["$span_id"]


def test_a_broken_tracing_module_never_fails_the_capture(
    sink: LocalSink, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An opentelemetry.trace without get_current_span (say, one half imported)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace",
                        types.ModuleType("opentelemetry.trace"))
    monkeypatch.setattr("posthog_integrations.core.tracing._failure_logged", False)
    client = make_client()
    client.capture("first", distinct_id="user-1")
    client.capture("second", distinct_id="user-1")
    events = delivered(client, sink)
    assert [event["event"] for event in events] == ["first", "second"]
    assert all(trace_properties(event) == {} for event in events)
    assert sum("OpenTelemetry" in record.getMessage() for record in caplog.records) == 1


@pytest.fixture
def flask_app(sink: LocalSink) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                       "POSTHOG_CAPTURE_PAGEVIEWS": True})

    @app.route("/pay")
    def pay() -> str:
        posthog.capture("payment started")
        raise RuntimeError("gateway down")

    @app.route("/receipt")
    def receipt() -> str:
        return "<html><body>paid</body></html>"

    PostHog(app)
    yield app
    app.extensions["posthog"].client.shutdown(timeout=2)


def test_a_flask_request_inside_a_span(
    flask_app: Flask, sink: LocalSink, tracer: trace.Tracer
) -> None:
    with tracer.start_as_current_span("inbound") as span:
        failed = flask_app.test_client().get("/pay")
        page = flask_app.test_client().get("/receipt")
        assert page.text.endswith("paid</body></html>")  # read: the response is done
    assert (failed.status_code, page.status_code) == (500, 200)
    events = delivered(flask_app.extensions["posthog"].client, sink)
    names = {event["event"] for event in events}
    assert {"payment started", "$exception", "$pageview"} <= names
    for event in events:
        assert trace_properties(event) == ids_of(span), event["event"]


def test_opentelemetry_is_never_imported_by_the_library() -> None:
    script = textwrap.dedent("""
        import sys
        from posthog_integrations.testing import capture_events
        from posthog_integrations import Client

        client = Client("phc_test", disabled=True)
        with capture_events() as events:
            client.capture("plain", distinct_id="user-1")
        loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
        print(loaded, "$trace_id" in events.one("plain")["properties"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split() == ["[]", "False"]
