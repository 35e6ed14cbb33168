"""Identity you can trust in Flask: Flask-Login's user, or the ``identify`` hook, wins over the
tracing header; the user is loaded only when the request captures (or reads its identity)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request, jsonify

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered

flask_login = pytest.importorskip("flask_login")

VICTIM = {"X-POSTHOG-DISTINCT-ID": "1", "X-POSTHOG-SESSION-ID": "session-9"}  # "1": the admin


class User(flask_login.UserMixin):  # type: ignore[name-defined,misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@pytest.fixture
def ext() -> Iterator[PostHog]:
    made = PostHog()
    yield made
    made.client.shutdown(timeout=2)


def login_app(sink: LocalSink, ext: PostHog, loads: list[str], **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "tests-only", "POSTHOG_API_KEY": API_KEY,
                       "POSTHOG_HOST": sink.url, "POSTHOG_RETRY_BASE_DELAY": 0.02, **config})
    ext.init_app(app)
    manager = flask_login.LoginManager(app)

    @manager.user_loader
    def load(user_id: str) -> User:
        loads.append(user_id)
        return User(user_id)

    @app.route("/login/<user_id>")
    def login(user_id: str) -> str:
        flask_login.login_user(User(user_id))
        return "ok"

    @app.route("/me")
    def me() -> Any:
        seen = posthog.get_context_distinct_id()
        posthog.capture("profile viewed")
        return jsonify(distinct_id=seen)

    @app.route("/flag")
    def flag() -> Any:
        return jsonify(variant=posthog.evaluate_flags().get_flag("new-checkout"))

    @app.route("/quiet")
    def quiet() -> str:
        return "nothing captured"

    @app.route("/page")
    def page() -> str:
        return "<h1>a page</h1>"

    return app


def test_a_logged_in_user_claiming_another_id_is_attributed_to_themself(
    sink: LocalSink, ext: PostHog
) -> None:
    loads: list[str] = []
    app = login_app(sink, ext, loads)
    member = app.test_client()
    member.get("/login/2")
    anonymous = app.test_client()
    assert member.get("/me", headers=VICTIM).json == {"distinct_id": "2"}
    assert anonymous.get("/me", headers=VICTIM).json == {"distinct_id": "1"}
    with app.app_context():
        events = delivered(ext.client, sink, event="profile viewed")
    assert [e["distinct_id"] for e in events] == ["2", "1"]
    assert {e["properties"]["$session_id"] for e in events} == {"session-9"}


def test_a_request_that_captures_nothing_never_loads_the_user(sink: LocalSink,
                                                              ext: PostHog) -> None:
    loads: list[str] = []
    app = login_app(sink, ext, loads)
    member = app.test_client()
    member.get("/login/2")
    for _ in range(3):
        assert member.get("/quiet", headers=VICTIM).status_code == 200
    assert loads == []
    member.get("/me", headers=VICTIM)
    assert loads == ["2"]  # loaded once, when the request needed its identity


def test_the_identify_hook_gets_flasks_request_and_wins_over_flask_login(
    sink: LocalSink, ext: PostHog
) -> None:
    seen: list[Any] = []

    def identify(request: Request) -> str | None:
        seen.append(request)
        return request.headers.get("X-Api-User")

    loads: list[str] = []
    app = login_app(sink, ext, loads, POSTHOG_IDENTIFY=identify)
    browser = app.test_client()
    assert browser.get("/me", headers={**VICTIM, "X-Api-User": "svc-7"}).json == {
        "distinct_id": "svc-7"}
    assert browser.get("/me", headers=VICTIM).json == {"distinct_id": "1"}
    assert len(seen) == 2
    assert all(isinstance(request, Request) for request in seen)


def test_a_page_view_is_attributed_to_the_logged_in_user(sink: LocalSink, ext: PostHog) -> None:
    """The page view is captured after Flask let go of its request: the user is looked up
    while Flask still holds it, and only when a page view is due."""
    loads: list[str] = []
    app = login_app(sink, ext, loads, POSTHOG_CAPTURE_PAGEVIEWS=True)
    member = app.test_client()
    member.get("/login/2")
    assert member.get("/quiet", headers=VICTIM).text == "nothing captured"  # text/html: a page
    loads.clear()
    assert member.get("/me", headers=VICTIM).json  # JSON: no page view; the capture loads it
    assert member.get("/page", headers=VICTIM).text == "<h1>a page</h1>"
    assert app.test_client().get("/page", headers=VICTIM).text == "<h1>a page</h1>"
    with app.app_context():
        page_views = delivered(ext.client, sink, event="$pageview")
    assert [e["distinct_id"] for e in page_views] == ["2", "2", "1"]
    assert loads == ["2", "2"]  # /me and /page; the anonymous visitor has no user to load


def test_a_logged_in_user_claiming_another_id_gets_their_own_flags(ext: PostHog) -> None:
    # The admin ("1", the header's id) would get "test"; the member "2", "control".
    flags = {"flags": {"new-checkout": "control"}, "distinct_ids": {"1": {"new-checkout": "test"}}}
    with LocalSink(flags=flags) as flag_sink:
        app = login_app(flag_sink, ext, [])
        member = app.test_client()
        member.get("/login/2")
        assert member.get("/flag", headers=VICTIM).json == {"variant": "control"}
        assert app.test_client().get("/flag", headers=VICTIM).json == {"variant": "test"}
        asked_for = [r.body["distinct_id"] for r in flag_sink.requests()
                     if r.path.rstrip("/") == "/flags"]
    assert asked_for == ["2", "1"]
