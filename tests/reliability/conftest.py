"""The capture protocol the fault scenarios run under: each scenario that uses ``capture_mode``
runs once per protocol, against the endpoint that protocol speaks to."""

from __future__ import annotations

import pytest

from posthog_integrations.sink import RecordedRequest

CAPTURE_MODES = ("v0", "v1")
# The path each mode posts batches to (as the sink records it, without a trailing slash).
BATCH_PATHS = {"v0": "/batch", "v1": "/i/v1/analytics/events"}


@pytest.fixture(params=CAPTURE_MODES)
def capture_mode(request: pytest.FixtureRequest) -> str:
    """``"v0"`` (``/batch/``) or ``"v1"`` (``/i/v1/analytics/events``)."""
    mode: str = request.param
    return mode


def assert_sent_in_mode(requests: list[RecordedRequest], mode: str) -> None:
    """Every request went to ``mode``'s endpoint, authenticated as that protocol does."""
    assert requests, "the endpoint saw no request"
    assert {r.path.rstrip("/") for r in requests} == {BATCH_PATHS[mode]}
    if mode == "v1":
        assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in requests)
        assert all(r.headers.get("posthog-attempt", "").isdigit() for r in requests)


def assert_same_attempt_continued(failed: RecordedRequest, retry: RecordedRequest,
                                  mode: str) -> None:
    """In v1, a resend is the next attempt of the same request: same id, attempt + 1."""
    if mode == "v1":
        assert retry.headers["posthog-request-id"] == failed.headers["posthog-request-id"]
        assert int(retry.headers["posthog-attempt"]) == int(failed.headers["posthog-attempt"]) + 1
