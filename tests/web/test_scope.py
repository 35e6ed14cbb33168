"""The request context through a real WSGI app: tags, identity, hooks, exclusion, page views."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Callable

import pytest
from werkzeug.test import Client as WerkzeugClient

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from posthog_integrations.web import RequestInfo, current_request
from posthog_integrations.web import scope as web_scope
from posthog_integrations.wsgi import PostHogMiddleware
from tests.conftest import ClientFactory, delivered

StartResponse = Callable[..., Any]


def app_capturing(event: str = "viewed", content_type: str = "text/html; charset=utf-8"):
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        posthog.capture(event, properties={"inner": True})
        start_response("200 OK", [("Content-Type", content_type)])
        return [b"<html></html>"]

    return app


@pytest.fixture
def fresh_hook_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A limiter that no hook has warned through yet: the module's own remembers every hook
    that raised in this process, so a test counting warnings would depend on those before it."""
    monkeypatch.setattr(web_scope, "_hook_warned_at", {})


def get(app: Any, path: str = "/items/7?token=abc", **headers: str) -> Any:
    return WerkzeugClient(app).get(path, headers=headers)


def test_events_carry_identity_session_and_request_tags(make_client: ClientFactory,
                                                        sink: LocalSink) -> None:
    client = make_client()
    app = PostHogMiddleware(app_capturing(), client=client)
    response = get(app, **{"X-PostHog-Distinct-Id": "user-1", "x-posthog-session-id": "s-1",
                           "User-Agent": "pytest-agent"})
    assert response.status_code == 200
    [event] = delivered(client, sink)
    assert event["distinct_id"] == "user-1"
    props = event["properties"]
    assert props["$session_id"] == "s-1"
    assert props["$current_url"] == "http://localhost/items/7"  # no query string by default
    assert (props["$request_method"], props["$request_path"]) == ("GET", "/items/7")
    assert props["$user_agent"] == "pytest-agent"
    assert props["inner"] is True
    assert "$ip" not in props
    assert "$process_person_profile" not in props


def test_without_headers_events_are_personless(make_client: ClientFactory,
                                               sink: LocalSink) -> None:
    client = make_client()
    get(PostHogMiddleware(app_capturing(), client=client))
    [event] = delivered(client, sink)
    assert event["properties"]["$process_person_profile"] is False


def test_query_string_and_ip_are_opt_in(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client()
    app = PostHogMiddleware(app_capturing(), client=client, capture_query_string=True,
                            trusted_proxies=1)
    WerkzeugClient(app).get("/items/7?token=abc", headers={"X-Forwarded-For": "203.0.113.9"})
    [event] = delivered(client, sink)
    assert event["properties"]["$current_url"] == "http://localhost/items/7?token=abc"
    assert event["properties"]["$ip"] == "203.0.113.9"


def test_tracing_headers_can_be_ignored(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client()
    app = PostHogMiddleware(app_capturing(), client=client, capture_tracing_headers=False)
    get(app, **{"X-POSTHOG-DISTINCT-ID": "spoofed"})
    [event] = delivered(client, sink)
    assert event["distinct_id"] != "spoofed"


def test_extra_tags_and_tag_map_shape_the_tags(make_client: ClientFactory,
                                               sink: LocalSink) -> None:
    client = make_client()

    def extra_tags(environ: dict[str, Any]) -> dict[str, Any]:
        return {"tenant": environ["HTTP_X_TENANT"]}

    def tag_map(tags: dict[str, Any]) -> dict[str, Any]:
        tags.pop("$user_agent", None)
        return {**tags, "tenant": tags["tenant"].upper()}

    app = PostHogMiddleware(app_capturing(), client=client, extra_tags=extra_tags,
                            tag_map=tag_map)
    get(app, **{"X-Tenant": "acme", "User-Agent": "agent"})
    [event] = delivered(client, sink)
    assert event["properties"]["tenant"] == "ACME"
    assert "$user_agent" not in event["properties"]


@pytest.mark.parametrize("hook", ["extra_tags", "tag_map", "request_filter"])
def test_a_raising_hook_is_logged_and_the_request_goes_on(
    hook: str, make_client: ClientFactory, sink: LocalSink, caplog: pytest.LogCaptureFixture,
    fresh_hook_warnings: None,
) -> None:
    client = make_client()

    def broken(_: Any) -> Any:
        raise RuntimeError("hook bug")

    app = PostHogMiddleware(app_capturing(), client=client, **{hook: broken})
    responses = [get(app, **{"X-POSTHOG-DISTINCT-ID": "u"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    events = delivered(client, sink)
    assert [e["distinct_id"] for e in events] == ["u", "u", "u"]
    assert events[0]["properties"]["$request_path"] == "/items/7"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and hook in r.message]
    assert len(warnings) == 1  # rate-limited: a broken hook cannot flood the logs
    assert warnings[0].exc_info is not None


def test_hooks_returning_the_wrong_type_are_ignored(make_client: ClientFactory,
                                                    sink: LocalSink) -> None:
    client = make_client()
    app = PostHogMiddleware(app_capturing(), client=client, extra_tags=lambda _: ["nope"],
                            tag_map=lambda _: "nope")
    assert get(app).status_code == 200
    [event] = delivered(client, sink)
    assert event["properties"]["$request_path"] == "/items/7"


def test_excluded_and_filtered_requests_pass_through_untouched(make_client: ClientFactory,
                                                               sink: LocalSink) -> None:
    client = make_client()
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen.append(current_request())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = PostHogMiddleware(
        app, client=client, exclude_paths=["/health*"],
        request_filter=lambda environ: environ["REQUEST_METHOD"] != "OPTIONS",
    )
    test_client = WerkzeugClient(wrapped)
    test_client.get("/healthz")
    test_client.options("/items")
    test_client.get("/items")
    assert [request is None for request in seen] == [True, True, False]


def test_pageview_after_a_successful_html_get(make_client: ClientFactory,
                                              sink: LocalSink) -> None:
    client = make_client()
    app = PostHogMiddleware(app_capturing(), client=client, capture_pageviews=True)
    get(app, **{"X-POSTHOG-DISTINCT-ID": "user-1"})
    WerkzeugClient(app).post("/items/7")
    get(PostHogMiddleware(app_capturing(content_type="application/json"), client=client,
                          capture_pageviews=True))
    pageviews = delivered(client, sink, event="$pageview")
    assert len(pageviews) == 1
    props = pageviews[0]["properties"]
    assert pageviews[0]["distinct_id"] == "user-1"
    assert props["$current_url"] == "http://localhost/items/7"
    assert (props["$host"], props["$pathname"]) == ("localhost", "/items/7")
    assert props["$response_status_code"] == 200
    assert props["$request_duration_ms"] >= 0


def test_no_pageview_for_errors_or_when_not_enabled(make_client: ClientFactory,
                                                    sink: LocalSink) -> None:
    client = make_client()

    def not_found(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/html")])
        return [b"missing"]

    get(PostHogMiddleware(not_found, client=client, capture_pageviews=True))
    get(PostHogMiddleware(app_capturing(), client=client))
    assert delivered(client, sink, event="$pageview") == []


def test_the_default_client_is_looked_up_per_request(sink: LocalSink) -> None:
    app = PostHogMiddleware(app_capturing("via default"))
    posthog.configure(api_key="phc_default", host=sink.url)
    try:
        get(app, **{"X-POSTHOG-DISTINCT-ID": "d"})
        assert posthog.flush(5)
        [event] = sink.events(event="via default")
        assert event["distinct_id"] == "d"
    finally:
        posthog.shutdown()


def test_tags_and_hooks_wait_for_the_first_event(make_client: ClientFactory,
                                                 sink: LocalSink) -> None:
    client = make_client()
    calls: list[str] = []

    def extra_tags(environ: dict[str, Any]) -> dict[str, Any]:
        calls.append(environ["PATH_INFO"])
        return {"tenant": "acme"}

    def quiet(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    WerkzeugClient(PostHogMiddleware(quiet, client=client, extra_tags=extra_tags)).get("/quiet")
    assert calls == []  # a request that captures nothing never reads its tags
    get(PostHogMiddleware(app_capturing(), client=client, extra_tags=extra_tags))
    assert calls == ["/items/7"]
    [event] = delivered(client, sink)
    assert event["properties"]["tenant"] == "acme"


def test_tags_that_fail_to_compute_are_logged_and_the_event_still_goes(
    make_client: ClientFactory, sink: LocalSink, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client()

    def broken(environ: Any) -> Any:
        raise RuntimeError("cannot read")

    monkeypatch.setattr(RequestInfo, "from_wsgi", broken)
    response = get(PostHogMiddleware(app_capturing(), client=client),
                   **{"X-POSTHOG-DISTINCT-ID": "u"})
    assert response.status_code == 200
    [event] = delivered(client, sink)
    assert event["distinct_id"] == "u"
    assert "$current_url" not in event["properties"]
    assert any("computing a context's tags failed" in r.message for r in caplog.records)
