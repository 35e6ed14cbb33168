"""The sink's live viewer page and the parts of the JSON API it relies on."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from typing import Any, NoReturn

import pytest
import requests

from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory
from tests.sink.test_sink import (
    KEY,
    REPO_ROOT,
    SHUTDOWN_TIMEOUT,
    SINK_CLI,
    V1_HEADERS,
    make_event,
    post,
)

# Names of a chromium-based browser on PATH, tried in order; POSTHOG_TEST_CHROMIUM overrides.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# CI sets POSTHOG_REQUIRE_BROWSER=1: there a missing browser fails the test instead of skipping.
REQUIRE_BROWSER = os.environ.get("POSTHOG_REQUIRE_BROWSER") == "1"
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
    assert api(sink) == {"events": [], "cursor": 0, "dropped": 0}
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("a"), make_event("b", "bob")]})
    first = api(sink)
    assert names(first) == ["b", "a"]
    assert first["cursor"] == sink.store.records()[-1].seq
    # Nothing new: no events, and the cursor stays where it was.
    nothing_new = {"events": [], "cursor": first["cursor"], "dropped": 0}
    assert api(sink, after=first["cursor"]) == nothing_new

    # Events from the v1 endpoint count too.
    v1_body = {"created_at": "2024-05-01T12:00:00Z",
               "batch": [make_event("c", "bob"), make_event("d")]}
    assert post(sink, "/i/v1/analytics/events", v1_body, headers=V1_HEADERS).ok
    newer = api(sink, after=first["cursor"])
    assert names(newer) == ["d", "c"]
    assert newer["cursor"] == sink.store.records()[-1].seq > first["cursor"]
    assert names(api(sink, after=first["cursor"], distinct_id="bob")) == ["c"]
    # With a limit the newest are returned and the cursor moves past the rest.
    assert api(sink, after=first["cursor"], limit=1)["cursor"] == newer["cursor"]
    unmatched = api(sink, after=first["cursor"], event="nope")
    assert unmatched == nothing_new

    # Sequence numbers keep growing after clear(), so an old cursor still works.
    sink.clear()
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("e")]})
    assert names(api(sink, after=newer["cursor"])) == ["e"]
    assert api(sink, after=0)["events"] == api(sink)["events"]


def test_api_rejects_a_cursor_that_is_not_a_number(sink: LocalSink) -> None:
    response = requests.get(f"{sink.url}/api/events?after=yesterday", timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_after"


def test_delete_api_events_clears_the_store(sink: LocalSink) -> None:
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("a"), make_event("b")]})
    cursor = api(sink)["cursor"]
    response = requests.delete(f"{sink.url}/api/events", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"cleared": 2}
    assert sink.events() == []
    assert api(sink) == {"events": [], "cursor": 0, "dropped": 0}
    # New events arrive after the old cursor: a viewer that kept it still sees them.
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("c")]})
    assert names(api(sink, after=cursor)) == ["c"]
    assert requests.delete(f"{sink.url}/api/events/", timeout=5).json() == {"cleared": 1}
    assert requests.delete(f"{sink.url}/api/events", timeout=5).json() == {"cleared": 0}


def test_delete_api_events_takes_no_parameters(sink: LocalSink) -> None:
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("kept")]})
    response = requests.delete(f"{sink.url}/api/events?event=kept", timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_parameter"
    assert names(api(sink)) == ["kept"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.test"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "evil.test"}, 421),
    ],
)
def test_delete_api_events_refuses_other_sites(
    sink: LocalSink, headers: dict[str, str], status: int
) -> None:
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("kept")]})
    response = requests.delete(f"{sink.url}/api/events", headers=headers, timeout=5)
    assert response.status_code == status
    assert names(api(sink)) == ["kept"]
    # The viewer's own page may clear: its Origin is the sink's.
    own = requests.delete(f"{sink.url}/api/events", headers={"Origin": sink.url}, timeout=5)
    assert own.json() == {"cleared": 1}


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
        proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


# -- a real browser -----------------------------------------------------------------------


def _explode() -> None:
    raise ValueError("card declined <b>twice</b>")


def _browser_unavailable(reason: str) -> NoReturn:
    """Skip, or fail when POSTHOG_REQUIRE_BROWSER=1 says the browser test must run."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}; POSTHOG_REQUIRE_BROWSER=1 requires the browser test to run")
    pytest.skip(reason)


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_browser(bundled: str) -> str | None:
    """The chromium to launch: POSTHOG_TEST_CHROMIUM, one on PATH, else playwright's own.

    None means playwright's own browser at ``bundled``; a configured path that does not
    exist, or no browser at all, is reported through :func:`_browser_unavailable`.
    """
    configured = os.environ.get("POSTHOG_TEST_CHROMIUM")
    if configured:
        if not _is_executable(configured):
            pytest.fail(f"POSTHOG_TEST_CHROMIUM={configured} is not an executable file")
        return configured
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if _is_executable(bundled):
        return None
    _browser_unavailable(
        f"no chromium found (looked for {', '.join(BROWSER_NAMES)} on PATH and for"
        f" playwright's own at {bundled}); set POSTHOG_TEST_CHROMIUM to its path"
    )


def test_find_browser_fails_when_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("POSTHOG_TEST_CHROMIUM", raising=False)
    monkeypatch.setattr(sys.modules[__name__], "REQUIRE_BROWSER", True)
    with pytest.raises(pytest.fail.Exception, match="POSTHOG_REQUIRE_BROWSER=1"):
        find_browser(str(tmp_path / "missing"))
    monkeypatch.setattr(sys.modules[__name__], "REQUIRE_BROWSER", False)
    with pytest.raises(pytest.skip.Exception, match="no chromium found"):
        find_browser(str(tmp_path / "missing"))
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_browser(str(tmp_path / "missing")) == str(fake)


def test_viewer_in_a_real_browser(sink: LocalSink, make_client: ClientFactory) -> None:
    try:
        from playwright import sync_api
    except ImportError:
        _browser_unavailable("playwright is not installed (it is in the test extra)")
    expect = sync_api.expect
    client = make_client(sync_mode=True)

    with sync_api.sync_playwright() as playwright:
        executable = find_browser(playwright.chromium.executable_path)
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000
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
            names = page.locator("#events td.name .event-name")

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
            # An exception's level shows beside its name.
            exception_row = page.locator("#events tr.exception")
            expect(exception_row.locator("td.name .level")).to_have_text("error")
            expect(page.locator("#events .level")).to_have_count(1)
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
            expect(detail.locator("dl").first).to_contain_text("levelerror")

            # Events the store drops to stay within its limit are counted on the page.
            expect(page.locator("#dropped")).to_be_hidden()
            sink.store.max_events = 6
            client.capture("overflow", distinct_id="alice")
            expect(page.locator("#dropped")).to_have_text("(1 oldest dropped by the sink)")

            # A flag call shows the flag and its answer in the list; any event's $feature/*
            # properties are chips in the list and grouped in its detail.
            for flag, response in (("new-checkout", "test"), ("beta", False)):
                client.capture(
                    "$feature_flag_called",
                    distinct_id="alice",
                    properties={
                        "$feature_flag": flag,
                        "$feature_flag_response": response,
                        f"$feature/{flag}": response,
                    },
                )
            long_url = "http://shop.test/buy?" + "&".join(f"item{i}=blue-shoes" for i in range(60))
            client.capture(
                "purchase",
                distinct_id="alice",
                properties={
                    "$current_url": long_url,
                    "$route": "/buy/<int:item_id>",
                    "$feature/new-checkout": "test",
                    "$feature/beta": False,
                    "$feature/<b>x</b>": "<i>v</i>",
                    "$active_feature_flags": ["new-checkout"],
                },
            )
            expect(names.first).to_have_text("purchase")
            calls = page.locator("#events tr", has_text="$feature_flag_called")
            expect(calls.locator("td.flags .flag-call")).to_have_text(
                ["beta=false", "new-checkout=test"]
            )
            expect(calls.locator("td.flags .flag-call .flag-value.off")).to_have_count(1)
            purchase = page.locator("#events tr", has_text="purchase")
            expect(purchase.locator("td.flags .chip")).to_have_text(
                ["<b>x</b>=<i>v</i>", "beta=false", "new-checkout=test"]
            )
            # However long the URL, the route stays in view: the URL is cut, whole in its title.
            url_cell = purchase.locator("td.url")
            expect(url_cell).to_have_text(long_url)
            expect(url_cell).to_have_attribute("title", long_url)
            route_cell = purchase.locator("td.route")
            expect(route_cell).to_have_text("/buy/<int:item_id>")
            pane = page.locator(".pane").first.bounding_box()
            route = route_cell.bounding_box()
            url = url_cell.bounding_box()
            assert pane is not None
            assert route is not None
            assert url is not None
            assert route["x"] + route["width"] <= pane["x"] + pane["width"]
            assert url["x"] + url["width"] <= pane["x"] + pane["width"] + 1
            assert page.evaluate("document.querySelector('.pane').scrollWidth") <= pane["width"]
            assert url_cell.evaluate("cell => cell.scrollWidth > cell.clientWidth")

            purchase.click()
            expect(detail.locator("h3", has_text="Feature flags")).to_have_count(1)
            expect(detail.locator("dl.flags dt")).to_have_text(["<b>x</b>", "beta", "new-checkout"])
            expect(detail.locator("dl.flags dd")).to_have_text(["<i>v</i>", "false", "test"])
            assert detail.locator("b, i").count() == 0

            calls.last.click()
            expect(detail.locator("h2")).to_have_text("$feature_flag_called")
            expect(detail.locator("dl").first).to_contain_text("flagnew-checkoutresponsetest")
            expect(detail.locator("dl.flags dt")).to_have_text(["new-checkout"])
            # Events without flags have no such section.
            page.locator("#events tr", has_text="signup").click()
            expect(detail.locator("h3", has_text="Feature flags")).to_have_count(0)
            purchase.click()  # for the screenshot
            expect(detail.locator("dl.flags")).to_be_visible()

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

            # "Clear events" empties the sink's store and the list; new events still arrive.
            page.click("#clear")
            expect(names).to_have_count(0)
            expect(page.locator("#empty-none")).to_be_visible()
            expect(page.locator("#dropped")).to_be_hidden()
            expect(page.locator("#detail")).not_to_contain_text("purchase")
            assert sink.events() == []
            client.capture("after-clear", distinct_id="alice")
            expect(names).to_have_text(["after-clear"])
            assert page.evaluate("window.sameDocument") is True  # no reload happened
            assert problems == []
        finally:
            browser.close()
