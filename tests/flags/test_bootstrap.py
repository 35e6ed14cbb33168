"""posthog-js's bootstrap from the request's flag snapshot: the right identity, flags, payloads
and session; values that try to end the script element stay inside it; and rendering it reads
the flags silently (no ``$feature_flag_called``, nothing riding on later events)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, render_template_string
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware, posthog_bootstrap
from posthog_integrations.core.context import LazyIdentity, activate, new_context
from posthog_integrations.feature_flags.bootstrap import bootstrap_data, bootstrap_json
from posthog_integrations.feature_flags.snapshot import FlagSnapshot
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.bootstrap_page import HOSTILE, PREFIX, SUFFIX, read_bootstrap

FLAGS = {"flags": {"new-checkout": "test", "dark-mode": True, "beta": False},
         "payloads": {"new-checkout": {"color": "blue", "sizes": [1, 2]}}}
PAGE = f"<html><head><script>{PREFIX}{{{{ posthog_bootstrap() }}}}{SUFFIX}</script></head>" \
       "<body>shop</body></html>"
HEADERS = {"X-POSTHOG-DISTINCT-ID": "visitor-7", "X-POSTHOG-SESSION-ID": "session-3"}
EXPECTED = {"distinctID": "visitor-7", "isIdentifiedID": False,
            "featureFlags": {"new-checkout": "test", "dark-mode": True, "beta": False},
            "featureFlagPayloads": {"new-checkout": {"color": "blue", "sizes": [1, 2]}},
            "sessionID": "session-3"}


def flag_requests(sink: LocalSink) -> int:
    return len([r for r in sink.requests() if r.path.rstrip("/") == "/flags"])


def assert_read_silently(sink: LocalSink) -> None:
    """The page's event carries no flag, and no $feature_flag_called was sent."""
    assert sink.events(event="$feature_flag_called") == []
    [event] = sink.events(event="page rendered")
    assert not [name for name in event["properties"]
                if name.startswith("$feature") or name == "$active_feature_flags"]


def test_the_json_escapes_everything_that_could_end_a_script_and_reads_back_the_same() -> None:
    snapshot = FlagSnapshot(distinct_id=HOSTILE)
    with new_context():
        posthog.set_context_session(HOSTILE)
        text = bootstrap_json(snapshot)
    for unsafe in ("<", ">", "&", "\u2028", "\u2029"):
        assert unsafe not in text
    assert json.loads(text) == {"distinctID": HOSTILE, "isIdentifiedID": False,
                                "featureFlags": {}, "featureFlagPayloads": {},
                                "sessionID": HOSTILE}


class FoundUser(LazyIdentity):
    def __init__(self, found: str | None, header: str | None) -> None:
        super().__init__()
        self.found, self.header = found, header

    def find(self) -> str | None:
        return self.found or self.header

    def fallback(self) -> str | None:
        return self.header


@pytest.mark.parametrize(("found", "header", "identified"), [
    ("user-1", "anon-1", True),  # a user was found: identified
    (None, "anon-1", False),  # only the header's anonymous id
    ("anon-1", "anon-1", False),  # cannot tell: anonymous is the harmless answer
])
def test_only_an_id_found_for_a_user_is_identified(found: str | None, header: str,
                                                    identified: bool) -> None:
    with new_context():
        activate((FoundUser(found, header), None, {}, None, None, {}))
        data = bootstrap_data(FlagSnapshot())
    assert (data["distinctID"], data["isIdentifiedID"]) == (found or header, identified)


def test_a_plain_id_reads_as_anonymous_unless_the_caller_says_otherwise() -> None:
    with new_context():
        posthog.identify_context("user-1")
        assert bootstrap_data(FlagSnapshot())["isIdentifiedID"] is False
        assert bootstrap_data(FlagSnapshot(), identified=True)["isIdentifiedID"] is True


def test_outside_a_context_the_bootstrap_has_no_identity_and_no_flags() -> None:
    assert bootstrap_data() == {"featureFlags": {}, "featureFlagPayloads": {}}


def test_a_flask_page_renders_the_requests_bootstrap_without_reading_its_flags() -> None:
    with LocalSink(flags=FLAGS) as sink:
        app = Flask(__name__)
        app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url})

        @app.route("/")
        def page() -> str:
            html = render_template_string(PAGE)
            posthog.capture("page rendered")
            return html

        extension = PostHog(app)
        try:
            html = app.test_client().get("/", headers=HEADERS).get_data(as_text=True)
            assert extension.client.flush(timeout=5)
        finally:
            extension.client.shutdown(timeout=2)
        assert read_bootstrap(html) == EXPECTED
        assert flag_requests(sink) == 1
        assert_read_silently(sink)


def test_a_flask_user_found_by_the_identify_hook_is_bootstrapped_as_identified() -> None:
    with LocalSink(flags=FLAGS) as sink:
        app = Flask(__name__)
        app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                           "POSTHOG_IDENTIFY": lambda request: "user-42"})
        app.add_url_rule("/", "page", lambda: render_template_string(PAGE))
        extension = PostHog(app)
        try:
            html = app.test_client().get("/", headers=HEADERS).get_data(as_text=True)
        finally:
            extension.client.shutdown(timeout=2)
        found = read_bootstrap(html)
        assert (found["distinctID"], found["isIdentifiedID"]) == ("user-42", True)
        assert found["featureFlags"] == EXPECTED["featureFlags"]


def test_hostile_ids_flags_and_payloads_stay_inside_the_flask_script() -> None:
    hostile_flags = {"flags": {"new-checkout": HOSTILE, "dark-mode": True},
                     "payloads": {"new-checkout": {HOSTILE: [HOSTILE]}}}
    with LocalSink(flags=hostile_flags) as sink:
        app = Flask(__name__)
        app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url})

        @app.route("/")
        def page() -> str:
            posthog.identify_context(HOSTILE)
            posthog.set_context_session(HOSTILE)
            return render_template_string(PAGE)

        extension = PostHog(app)
        try:
            html = app.test_client().get("/").get_data(as_text=True)
        finally:
            extension.client.shutdown(timeout=2)
        assert read_bootstrap(html) == {
            "distinctID": HOSTILE, "isIdentifiedID": False,
            "featureFlags": {"new-checkout": HOSTILE, "dark-mode": True},
            "featureFlagPayloads": {"new-checkout": {HOSTILE: [HOSTILE]}},
            "sessionID": HOSTILE,
        }


def make_starlette_app(client: Client, templates: Jinja2Templates, *, read_first: bool) -> Any:
    async def page(request: Request) -> Response:
        if read_first:  # what the docs advise: the render then reads them from memory
            await posthog.aflags()
        response = templates.TemplateResponse(request, "page.html")
        posthog.capture("page rendered")
        return response

    def sync_page(request: Request) -> Response:
        response = templates.TemplateResponse(request, "page.html")
        posthog.capture("page rendered")
        return response

    return PostHogMiddleware(Starlette(routes=[Route("/", page), Route("/sync", sync_page)]),
                             client=client)


def test_a_starlette_jinja_page_renders_the_requests_bootstrap(tmp_path: Any) -> None:
    (tmp_path / "page.html").write_text(PAGE)
    templates = Jinja2Templates(directory=str(tmp_path))
    templates.env.globals["posthog_bootstrap"] = posthog_bootstrap
    for path, read_first in (("/", True), ("/sync", False)):
        with LocalSink(flags=FLAGS) as sink:
            client = Client(API_KEY, host=sink.url)
            try:
                with TestClient(make_starlette_app(client, templates,
                                                   read_first=read_first)) as http:
                    html = http.get(path, headers=HEADERS).text
                assert client.flush(timeout=5)
            finally:
                client.shutdown(timeout=2)
            assert read_bootstrap(html) == EXPECTED, path
            assert flag_requests(sink) == 1
            assert_read_silently(sink)
