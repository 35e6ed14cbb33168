"""What travels in a published task's message: the header read back from the broker (kombu's
in-memory transport: no server needed to read exactly what was sent)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Callable

import pytest
from celery import Celery

from posthog_integrations import (
    Client,
    get_context_distinct_id,
    identify_context,
    new_context,
    set_context_session,
    tag,
)
from posthog_integrations.celery import PostHogCelery
from posthog_integrations.core.context import LazyIdentity, activate, restore
from tests.celery.tasks import register
from tests.conftest import ClientFactory

HEADER = "posthog_context"
MAX_HEADER_BYTES = 4096


class Published:
    """An app on kombu's in-memory broker with the test tasks, and the message it sent."""

    def __init__(self, client: Client, **options: Any) -> None:
        self.prefix = f"memory{uuid.uuid4().hex[:8]}"
        self.queue = f"q-{self.prefix}"
        self.app = Celery(self.prefix, broker="memory://", set_as_current=False)
        register(self.app, self.prefix)
        self.client = client
        self.integration = PostHogCelery(self.app, client=client, **options)

    def publish(self, task: str = "capture", *args: Any, **options: Any) -> dict[str, Any]:
        """Publish ``task`` and return the headers of the message the broker holds."""
        self.app.tasks[f"{self.prefix}.{task}"].apply_async(args or ("event",), queue=self.queue,
                                                           **options)
        with self.app.connection_for_read() as connection, \
                connection.SimpleQueue(self.queue, no_ack=True) as queue:
            message = queue.get(timeout=5)
            headers: dict[str, Any] = message.headers
            return headers


@pytest.fixture
def published(make_client: ClientFactory) -> Iterator[Callable[..., Published]]:
    made: list[Published] = []

    def make(**options: Any) -> Published:
        app = Published(make_client(), **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.app.close()


def identified_context() -> None:
    identify_context("user-1")
    set_context_session("session-1")
    tag("plan", "pro")
    tag("cart_items", 3)
    tag("$current_url", "https://shop.example/cart?coupon=SECRET")
    tag("$request_path", "/cart")
    tag("$request_method", "POST")
    tag("$user_agent", "Firefox")
    tag("$ip", "203.0.113.9")
    tag("$host", "shop.example")
    tag("$pathname", "/cart")
    tag("$route", "/cart")
    tag("$response_status_code", 200)
    tag("$request_duration_ms", 12.5)
    tag("$request_id", "abc")


def test_the_identity_session_and_allowed_tags_travel_in_one_versioned_header(
        published: Callable[..., Published]) -> None:
    app = published()
    with app.client.new_context(fresh=True):
        identified_context()
        headers = app.publish()
    expected = {"v": 1, "distinct_id": "user-1", "session_id": "session-1",
                "tags": {"plan": "pro", "cart_items": 3}}
    assert headers[HEADER] == expected
    assert headers["headers"][HEADER] == expected


def test_nothing_travels_from_outside_any_context(published: Callable[..., Published]) -> None:
    app = published()
    headers = app.publish()
    assert HEADER not in headers
    assert HEADER not in (headers.get("headers") or {})


def test_nothing_travels_from_an_empty_context(published: Callable[..., Published]) -> None:
    app = published()
    with new_context(fresh=True):
        tag("$current_url", "https://shop.example/")
        headers = app.publish()
    assert HEADER not in headers


def test_propagate_false_sends_nothing(published: Callable[..., Published]) -> None:
    app = published(propagate=False)
    with new_context(fresh=True):
        identified_context()
        headers = app.publish()
    assert HEADER not in headers
    assert HEADER not in (headers.get("headers") or {})


def test_a_call_can_opt_out_and_its_retries_stay_opted_out(
        published: Callable[..., Published]) -> None:
    app = published()
    with new_context(fresh=True):
        identified_context()
        headers = app.publish(headers={"posthog_propagate": False})
    assert HEADER not in headers
    assert HEADER not in (headers.get("headers") or {})
    # A retry is published with the task's request headers, this inner dict.
    assert headers["headers"]["posthog_propagate"] is False


def test_propagate_tags_names_the_tags_that_travel(published: Callable[..., Published]) -> None:
    app = published(propagate_tags=["plan", "$current_url", "absent"])
    with new_context(fresh=True):
        identified_context()
        headers = app.publish()
    assert headers[HEADER]["tags"] == {"plan": "pro",
                                       "$current_url": "https://shop.example/cart?coupon=SECRET"}
    assert headers[HEADER]["distinct_id"] == "user-1"


def test_propagate_tags_takes_a_predicate(published: Callable[..., Published]) -> None:
    app = published(propagate_tags=lambda name: name.startswith("cart"))
    with new_context(fresh=True):
        identified_context()
        headers = app.publish()
    assert headers[HEADER]["tags"] == {"cart_items": 3}


def test_a_failing_predicate_keeps_its_tags_home_and_says_so_once(
        published: Callable[..., Published], caplog: pytest.LogCaptureFixture) -> None:
    def refuse(name: str) -> bool:
        raise RuntimeError("broken predicate")

    app = published(propagate_tags=refuse)
    with new_context(fresh=True):
        identified_context()
        first = app.publish()
        second = app.publish()
    assert first[HEADER]["tags"] == second[HEADER]["tags"] == {}
    assert first[HEADER]["distinct_id"] == "user-1"
    assert len([r for r in caplog.records if "propagate_tags" in r.getMessage()]) == 1


def test_values_that_are_not_json_travel_as_text(published: Callable[..., Published]) -> None:
    class Plan:
        def __repr__(self) -> str:
            return "<Plan pro>"

    app = published()
    with new_context(fresh=True):
        tag("plan", Plan())
        tag("amounts", (1, 2))
        headers = app.publish()
    assert headers[HEADER]["tags"]["amounts"] == [1, 2]
    assert "Plan" in headers[HEADER]["tags"]["plan"]


def test_a_lazy_identity_is_looked_up_when_the_task_is_published(
        published: Callable[..., Published]) -> None:
    class FromSession(LazyIdentity):
        def find(self) -> str | None:
            return "user-from-session"

    app = published()
    scope = (FromSession(), None, {}, None, None, {})
    token = activate(scope)
    try:
        headers = app.publish()
    finally:
        restore(token)
    assert headers[HEADER]["distinct_id"] == "user-from-session"


def test_an_oversize_header_drops_tags_largest_first_counted_and_the_task_is_sent(
        published: Callable[..., Published]) -> None:
    app = published()
    with new_context(fresh=True):
        identified_context()
        tag("big_a", "a" * 2500)
        tag("big_b", "b" * 2000)
        tag("small", "kept")
        headers = app.publish()
    header = headers[HEADER]
    assert len(json.dumps(header).encode()) <= MAX_HEADER_BYTES
    assert header["distinct_id"] == "user-1"
    assert "big_a" not in header["tags"]
    assert header["tags"]["small"] == "kept"
    assert header["tags"]["big_b"] == "b" * 2000
    assert app.client.stats().context_dropped_by_reason["header_tags_oversize"] == 1
    assert app.client.stats().dropped == 0


def test_an_identity_too_large_for_the_header_sends_the_task_without_it(
        published: Callable[..., Published], caplog: pytest.LogCaptureFixture) -> None:
    app = published()
    with new_context(fresh=True):
        identify_context("u" * 5000)
        tag("plan", "pro")
        headers = app.publish()
    assert HEADER not in headers
    assert headers["task"] == f"{app.prefix}.capture"
    assert app.client.stats().context_dropped_by_reason["header_oversize"] == 1


class ExplodingTags(Mapping[str, Any]):
    def __getitem__(self, name: str) -> Any:
        raise RuntimeError("tags unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("tags unreadable")

    def __len__(self) -> int:
        return 1


def test_a_failure_building_the_header_publishes_the_task_without_it_and_logs_once(
        published: Callable[..., Published], caplog: pytest.LogCaptureFixture) -> None:
    app = published()
    token = activate(("user-1", None, ExplodingTags(), None, None, {}))
    try:
        first = app.publish()
        second = app.publish()
    finally:
        restore(token)
    assert HEADER not in first
    assert HEADER not in second
    assert first["task"] == f"{app.prefix}.capture"
    assert app.client.stats().context_dropped_by_reason["header_failed"] == 2
    failures = [r for r in caplog.records
                if r.levelno >= logging.WARNING and "header" in r.getMessage()]
    assert len(failures) == 1


def test_publishing_leaves_the_callers_context_as_it_was(
        published: Callable[..., Published]) -> None:
    app = published()
    with new_context(fresh=True):
        identified_context()
        app.publish()
        assert get_context_distinct_id() == "user-1"
