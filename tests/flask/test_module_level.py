"""Module-level calls outside a view (CLI commands, threads, excluded paths, start-up code)
reach the client of the one Flask app set up; with several apps, the warning says why not."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY

OTHER_KEY = "phc_other_project_key"
_apps: list[Flask] = []


def _unset_module_settings() -> None:
    for name in ("api_key", "host", "debug", "disabled", "sync_mode"):
        setattr(posthog, name, None)
    posthog.configure()


@pytest.fixture(autouse=True)
def _no_configured_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a fresh process: no module settings, no POSTHOG_* variables, no other app."""
    for variable in ("POSTHOG_API_KEY", "POSTHOG_HOST", "POSTHOG_DEBUG", "POSTHOG_DISABLED"):
        monkeypatch.delenv(variable, raising=False)
    _unset_module_settings()
    gc.collect()  # apps other tests left unreachable, with their clients
    yield
    while _apps:
        _apps.pop().extensions["posthog"].client.shutdown(timeout=2)
    _unset_module_settings()


def create_app(sink: LocalSink, api_key: str = API_KEY, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"POSTHOG_API_KEY": api_key, "POSTHOG_HOST": sink.url,
                       "POSTHOG_RETRY_BASE_DELAY": 0.02, **config})

    @app.route("/health")
    def health() -> str:
        posthog.capture("health checked", distinct_id="probe")
        return "ok"

    @app.cli.command("import-orders")
    def import_orders() -> None:
        posthog.capture("orders imported", distinct_id="cron", properties={"count": 3})

    PostHog(app)
    _apps.append(app)
    return app


def delivered_by_key(sink: LocalSink) -> dict[str | None, list[str]]:
    assert posthog.flush(5)
    found: dict[str | None, list[str]] = {}
    for request in sink.requests():
        found.setdefault(request.api_key, []).extend(e["event"] for e in request.events)
    return found


def test_a_flask_cli_command_reaches_the_apps_client(sink: LocalSink) -> None:
    app = create_app(sink)
    result = app.test_cli_runner().invoke(args=["import-orders"])
    assert result.exit_code == 0, result.output
    assert delivered_by_key(sink) == {API_KEY: ["orders imported"]}
    [event] = sink.events()
    assert (event["distinct_id"], event["properties"]["count"]) == ("cron", 3)


def test_a_thread_start_up_code_and_an_excluded_path_reach_the_apps_client(
        sink: LocalSink, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(sink, POSTHOG_EXCLUDE_PATHS=["/health"])
    posthog.capture("app started", distinct_id="server")
    worker = threading.Thread(
        target=lambda: posthog.capture("job done", distinct_id="worker"))
    worker.start()
    worker.join()
    assert app.test_client().get("/health").text == "ok"
    assert delivered_by_key(sink) == {API_KEY: ["app started", "job done", "health checked"]}
    assert posthog.get_client() is app.extensions["posthog"].client
    assert "no PostHog API key" not in caplog.text


def test_two_apps_with_different_clients_leave_the_default_and_say_so(
        sink: LocalSink, caplog: pytest.LogCaptureFixture) -> None:
    first = create_app(sink)
    posthog.capture("while one app", distinct_id="u")
    second = create_app(sink, api_key=OTHER_KEY)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="posthog_integrations"):
        assert posthog.capture("outside any request", distinct_id="u") is None
        assert posthog.capture("again", distinct_id="u") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "2 Flask apps with different PostHog clients are set up; outside a request of one of "
        "them, module-level calls use the default client, which has no API key: their events "
        "are not sent. Configure it (posthog_integrations.configure(api_key=...) or "
        "POSTHOG_API_KEY) or use the app's own client (PostHog(app).client, "
        "app.extensions['posthog'].client)"]
    assert posthog.stats().dropped_by_reason["disabled"] == 2
    for app in (first, second):  # each app's requests still go to its own client
        assert app.test_client().get("/health").text == "ok"
        assert app.extensions["posthog"].client.flush(5)
    assert delivered_by_key(sink) == {API_KEY: ["while one app", "health checked"],
                                      OTHER_KEY: ["health checked"]}


def test_apps_sharing_one_client_keep_it_as_the_default(sink: LocalSink) -> None:
    shared = create_app(sink).extensions["posthog"].client
    second = Flask(__name__)
    PostHog(second, client=shared)
    posthog.capture("shared", distinct_id="u")
    assert delivered_by_key(sink) == {API_KEY: ["shared"]}


def test_an_explicit_configuration_wins_over_the_app(sink: LocalSink) -> None:
    create_app(sink)
    configured = posthog.configure(api_key=OTHER_KEY, host=sink.url)
    assert posthog.get_client() is configured
    posthog.capture("configured", distinct_id="u")
    assert delivered_by_key(sink) == {OTHER_KEY: ["configured"]}


def test_a_shut_down_app_client_is_no_longer_the_default(sink: LocalSink) -> None:
    app = create_app(sink)
    app.extensions["posthog"].client.shutdown(timeout=2)
    assert posthog.get_client() is not app.extensions["posthog"].client
    assert posthog.capture("after shutdown", distinct_id="u") is None
