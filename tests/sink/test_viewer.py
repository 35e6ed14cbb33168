"""The sink's live viewer page and the parts of the JSON API it relies on."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
import requests

from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory
from tests.sink.test_sink import KEY, REPO_ROOT, SINK_CLI, make_event, post

CHROMIUM = os.environ.get("POSTHOG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "viewer.png"


def api(sink: LocalSink, **params: Any) -> dict[str, Any]:
    response = requests.get(f"{sink.url}/api/events", params=params, timeout=5)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def names(answer: dict[str, Any]) -> list[str]:
    return [e["event"] for e in answer["events"]]


# -- plain HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_viewer_page_is_served(sink: LocalSink, path: str) -> None:
    response = requests.get(sink.url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>PostHog sink</title>" in response.text
    assert "POSTHOG_HOST=" in response.text
    # The policy allows exactly the page's own inline script, so injected markup cannot run.
    script = re.search(r"<script>(.*?)</script>", response.text, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    policy = response.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert sink.requests() == []  # page views are not capture requests


def test_api_filters_by_event_distinct_id_and_session(sink: LocalSink) -> None:
    batch = [
        make_event("pageview", "alice", **{"$session_id": "s1"}),
        make_event("signup", "alice", **{"$session_id": "s2"}),
        make_event("pageview", "bob", **{"$session_id": "s1"}),
    ]
    assert post(sink, "/batch/", {"api_key": KEY, "batch": batch}).ok
    assert names(api(sink, event="pageview")) == ["pageview", "pageview"]
    assert [e["distinct_id"] for e in api(sink, event="pageview")["events"]] == ["bob", "alice"]
    assert names(api(sink, distinct_id="alice")) == ["signup", "pageview"]
    assert names(api(sink, session_id="s1", distinct_id="bob")) == ["pageview"]
    assert names(api(sink, session_id="s2")) == ["signup"]
    assert names(api(sink, distinct_id="nobody")) == []
    # Empty parameters are no filter, as the viewer's empty inputs send them.
    assert len(api(sink, event="", distinct_id="", session_id="")["events"]) == 3


def test_api_cursor_returns_only_newer_events(sink: LocalSink) -> None:
    assert api(sink) == {"events": [], "cursor": 0}
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("a"), make_event("b", "bob")]})
    first = api(sink)
    assert names(first) == ["b", "a"]
    assert first["cursor"] == sink.store.records()[-1].seq
    # Nothing new: no events, and the cursor stays where it was.
    assert api(sink, after=first["cursor"]) == {"events": [], "cursor": first["cursor"]}

    # Events from the v1 endpoint count too.
    v1_body = {"batch": [make_event("c", "bob"), make_event("d")]}
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert post(sink, "/i/v1/analytics/events", v1_body, headers=bearer).ok
    newer = api(sink, after=first["cursor"])
    assert names(newer) == ["d", "c"]
    assert newer["cursor"] == sink.store.records()[-1].seq > first["cursor"]
    assert names(api(sink, after=first["cursor"], distinct_id="bob")) == ["c"]
    # With a limit the newest are returned and the cursor moves past the rest.
    assert api(sink, after=first["cursor"], limit=1)["cursor"] == newer["cursor"]
    unmatched = api(sink, after=first["cursor"], event="nope")
    assert unmatched == {"events": [], "cursor": first["cursor"]}

    # Sequence numbers keep growing after clear(), so an old cursor still works.
    sink.clear()
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("e")]})
    assert names(api(sink, after=newer["cursor"])) == ["e"]
    assert api(sink, after=-5)["events"] == api(sink)["events"]


def test_api_rejects_a_cursor_that_is_not_a_number(sink: LocalSink) -> None:
    response = requests.get(f"{sink.url}/api/events?after=yesterday", timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_after"


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_cli_banner_shows_the_viewer_url() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", ":memory:", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        banner = [proc.stdout.readline() for _ in range(4)]
        [viewer_line] = [line for line in banner if f" {url}/ " in line]
        assert "live" in viewer_line
        assert "<title>PostHog sink</title>" in requests.get(f"{url}/", timeout=5).text
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


# -- a real browser -----------------------------------------------------------------------


def _explode() -> None:
    raise ValueError("card declined <b>twice</b>")


def test_viewer_in_a_real_browser(sink: LocalSink, make_client: ClientFactory) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM} (set POSTHOG_TEST_CHROMIUM to its path)")
    expect = sync_api.expect
    client = make_client(sync_mode=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=10_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(4_000)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))

            page.goto(sink.url + "/")
            expect(page.locator("#host-hint")).to_have_text(f"POSTHOG_HOST={sink.url}")
            expect(page.locator("#status")).to_have_text("live")
            page.evaluate("window.sameDocument = true")
            names = page.locator("#events td.name")

            # Rows appear as events arrive, newest first.
            client.capture(
                "signup",
                distinct_id="alice",
                properties={
                    "$session_id": "sess-1",
                    "$current_url": "http://shop.test/signup",
                    "$route": "/signup",
                },
            )
            expect(names).to_have_text(["signup"])
            expect(page.locator("#empty")).to_be_hidden()
            hostile = '<img src=x onerror="window.pwned = 1">'
            client.capture("pageview", distinct_id="alice", properties={"$session_id": "sess-1"})
            client.capture(hostile, distinct_id="mallory")
            try:
                _explode()
            except ValueError:
                client.capture_exception(distinct_id="bob", properties={"$session_id": "sess-2"})
            expect(names).to_have_text(["$exception", hostile, "pageview", "signup"])
            # Event data is shown as text, never parsed as markup.
            assert page.locator("#events img").count() == 0
            assert page.evaluate("window.pwned") is None

            # Filtering is done by the API, and new matching events still arrive.
            page.fill("#filter-distinct-id", "alice")
            expect(names).to_have_text(["pageview", "signup"])
            client.capture("checkout", distinct_id="alice")
            client.capture("checkout", distinct_id="bob")
            expect(names).to_have_text(["checkout", "pageview", "signup"])
            page.fill("#filter-distinct-id", "nobody")
            expect(page.locator("#empty-filtered")).to_be_visible()
            page.fill("#filter-distinct-id", "")
            expect(names).to_have_count(6)

            # The exception's detail: type, message and frames, the test's own marked in app.
            page.locator("#events tr", has_text="$exception").click()
            detail = page.locator("#detail")
            expect(detail.locator(".exc-type").first).to_have_text("ValueError")
            expect(detail.locator(".exc-value").first).to_have_text("card declined <b>twice</b>")
            line = _explode.__code__.co_firstlineno + 1
            frame = detail.locator("li.in-app", has_text=f"test_viewer.py:{line} in _explode")
            expect(frame).to_have_count(1)
            expect(frame.locator(".badge")).to_have_text("in app")
            expect(detail.locator("pre.json")).to_contain_text('"$session_id": "sess-2"')

            assert page.evaluate("window.sameDocument") is True  # no reload happened
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            assert problems == []
        finally:
            browser.close()
