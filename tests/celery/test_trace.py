"""The worker's side in-process: Celery's own tracer runs a task from a message's request, as a
worker's pool process does, without a broker. For what a real worker cannot be made to
receive: headers our producer would never send."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from celery import Celery
from celery.app.trace import build_tracer

from posthog_integrations import Client, get_tags, identify_context, tag
from posthog_integrations.celery import PostHogCelery
from posthog_integrations.core.context import activate, restore
from posthog_integrations.sink import LocalSink
from tests.celery.tasks import register
from tests.celery.test_publish import ExplodingTags
from tests.conftest import ClientFactory, delivered

HEADER = "posthog_context"
Run = Callable[..., Client]


class Traced:
    def __init__(self, client: Client, **options: Any) -> None:
        self.prefix = f"trace{uuid.uuid4().hex[:8]}"
        self.app = Celery(self.prefix, broker="memory://", set_as_current=False)
        self.app.conf.task_ignore_result = True
        register(self.app, self.prefix)
        self.client = client
        PostHogCelery(self.app, client=client, **options)

    def run(self, task: str, args: tuple[Any, ...], **message_headers: Any) -> str:
        """Run ``task`` as a worker runs a message with these headers; its id."""
        name = f"{self.prefix}.{task}"
        task_id = str(uuid.uuid4())
        tracer = build_tracer(name, self.app.tasks[name], app=self.app, store_errors=False)
        tracer(task_id, args, {}, {"id": task_id, "task": name, "retries": 0,
                                   **message_headers})
        return task_id


@pytest.fixture
def traced(make_client: ClientFactory) -> Iterator[Callable[..., Traced]]:
    made: list[Traced] = []

    def make(**options: Any) -> Traced:
        app = Traced(make_client(), **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.app.close()


def header(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "distinct_id": None, "session_id": None, "tags": {}, **fields}


def test_the_header_is_read_from_the_message_or_from_its_nested_headers(
        traced: Callable[..., Traced], sink: LocalSink) -> None:
    app = traced()
    app.run("capture", ("top level",), posthog_context=header(distinct_id="user-top"))
    app.run("capture", ("nested",), headers={HEADER: header(distinct_id="user-nested")})
    by_name = {e["event"]: e for e in delivered(app.client, sink)}
    assert by_name["top level"]["distinct_id"] == "user-top"
    assert by_name["nested"]["distinct_id"] == "user-nested"


@pytest.mark.parametrize("value", [
    {"v": 2, "distinct_id": "user-from-the-future"},
    {"v": 1, "distinct_id": 42, "session_id": None, "tags": {}},
    {"v": 1, "distinct_id": "user-1", "session_id": None, "tags": ["plan"]},
    "user-1",
])
def test_an_unreadable_header_runs_the_task_anonymous_and_is_counted(
        value: Any, traced: Callable[..., Traced], sink: LocalSink,
        caplog: pytest.LogCaptureFixture) -> None:
    app = traced()
    app.run("capture", ("unreadable",), posthog_context=value)
    [event] = delivered(app.client, sink, event="unreadable")
    assert event["properties"]["$process_person_profile"] is False
    assert app.client.stats().context_dropped_by_reason["header_unreadable"] == 1
    assert "header was not readable" in caplog.text


def test_a_worker_with_propagate_false_ignores_the_header(
        traced: Callable[..., Traced], sink: LocalSink) -> None:
    app = traced(propagate=False)
    app.run("capture", ("ignored",), posthog_context=header(distinct_id="user-1"))
    [event] = delivered(app.client, sink, event="ignored")
    assert event["properties"]["$process_person_profile"] is False


def test_an_eager_task_whose_callers_context_cannot_be_read_still_runs_in_its_own(
        traced: Callable[..., Traced], sink: LocalSink) -> None:
    app = traced()
    token = activate(("user-1", None, ExplodingTags(), None, None, {}))
    try:
        app.app.tasks[f"{app.prefix}.tag_and_capture"].apply(("unreadable caller", "x", 1))
    finally:
        restore(token)
    [event] = delivered(app.client, sink, event="unreadable caller")
    assert event["properties"]["x"] == 1
    assert event["properties"]["celery_task_name"] == f"{app.prefix}.tag_and_capture"
    assert app.client.stats().context_dropped_by_reason["header_failed"] == 1


def test_the_worker_context_is_given_back_after_each_task(
        traced: Callable[..., Traced], sink: LocalSink) -> None:
    app = traced()
    with app.client.new_context(fresh=True):
        identify_context("the pool's own")
        tag("pool", "kept")
        app.run("tag_and_capture", ("inside", "leaky", 1),
                posthog_context=header(distinct_id="user-1"))
        assert get_tags() == {"pool": "kept"}
    [event] = delivered(app.client, sink, event="inside")
    assert "pool" not in event["properties"]
