"""Identity under WSGI: the ``identify`` hook gets the environ and wins over the header."""

from __future__ import annotations

from typing import Any, Callable

from werkzeug.test import Client as WerkzeugClient

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from posthog_integrations.wsgi import PostHogMiddleware
from tests.conftest import ClientFactory, delivered

VICTIM = {"X-POSTHOG-DISTINCT-ID": "bob", "X-POSTHOG-SESSION-ID": "session-9"}


def test_the_hook_wins_over_the_header_lazily_and_once(sink: LocalSink,
                                                       make_client: ClientFactory) -> None:
    calls: list[str] = []

    def identify(environ: dict[str, Any]) -> str | None:
        calls.append(environ["PATH_INFO"])
        return environ.get("REMOTE_USER")  # set by the server's authentication

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/me":
            posthog.capture("profile viewed")
            posthog.capture("profile viewed again")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(posthog.get_context_distinct_id()).encode()]

    client = make_client()
    browser = WerkzeugClient(PostHogMiddleware(app, client=client, identify=identify))
    logged_in = {"REMOTE_USER": "ada"}
    assert browser.get("/me", headers=VICTIM, environ_overrides=logged_in).text == "ada"
    assert browser.get("/me", headers=VICTIM).text == "bob"
    calls_before_quiet = list(calls)
    browser.get("/quiet", environ_overrides=logged_in)  # reads the id only in its body
    events = delivered(client, sink)
    assert [e["distinct_id"] for e in events] == ["ada", "ada", "bob", "bob"]
    assert {e["properties"]["$session_id"] for e in events} == {"session-9"}
    assert calls_before_quiet == ["/me", "/me"]  # once per request that needed it
