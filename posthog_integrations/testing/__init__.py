"""Helpers for your own tests: see what your app captured, without sending anything.

::

    from posthog_integrations.testing import capture_events

    def test_signup(client):
        with capture_events() as events:
            client.post("/signup", data={"username": "ada"})
        assert events.one("signed up")["distinct_id"] == "user-ada"

With pytest, the ``posthog_events`` fixture does the same for one test.

``override_flags()`` (and the ``posthog_flags`` fixture) make every client answer flag
evaluations from fixed values, with no request::

    with override_flags({"new-checkout": "test"}, payloads={"new-checkout": {"color": "blue"}}):
        client.get("/checkout")
"""

from __future__ import annotations

from .flags import FlagOverrideControl, override_flags
from .recording import CapturedEvents, capture_events

__all__ = ["CapturedEvents", "FlagOverrideControl", "capture_events", "override_flags"]
