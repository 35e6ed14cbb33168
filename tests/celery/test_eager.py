"""Eager execution (``task_always_eager``, ``.apply()``): no broker, no worker. The task runs
in the caller's thread with the caller's identity, and the caller's context is as it was
afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from celery import Celery

from posthog_integrations import (
    Client,
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    set_context_session,
    tag,
)
from posthog_integrations.celery import PostHogCelery
from posthog_integrations.sink import LocalSink
from tests.celery.tasks import register
from tests.conftest import ClientFactory, delivered

EagerApp = Callable[..., tuple[Celery, Client, str]]


@pytest.fixture
def eager_app(make_client: ClientFactory) -> Iterator[EagerApp]:
    """An app running its tasks eagerly with a client to the sink; its task name prefix."""
    apps: list[Celery] = []

    def make(*, always_eager: bool = True, client: Client | None = None,
             **options: Any) -> tuple[Celery, Client, str]:
        prefix = f"eager{uuid.uuid4().hex[:8]}"
        app = Celery(prefix, broker="memory://", set_as_current=False)
        app.conf.task_always_eager = always_eager
        register(app, prefix)
        chosen = client or make_client()
        PostHogCelery(app, client=chosen, **options)
        apps.append(app)
        return app, chosen, prefix

    yield make
    for app in apps:
        app.close()


def request_like_context() -> None:
    identify_context("user-eager")
    set_context_session("session-eager")
    tag("plan", "pro")
    tag("$current_url", "https://shop.example/checkout?token=SECRET")
    tag("$request_path", "/checkout")


def test_an_eager_task_inherits_the_callers_identity_and_leaves_its_context_intact(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app()
    with client.new_context(fresh=True):
        request_like_context()
        before = (get_context_distinct_id(), get_context_session_id(), get_tags())
        result = app.tasks[f"{prefix}.tag_and_capture"].delay("eager ran", "leaky", "yes")
        after = (get_context_distinct_id(), get_context_session_id(), get_tags())
    assert result.successful(), result.traceback
    assert after == before
    [ran] = delivered(client, sink, event="eager ran")
    # The task identified itself inside: that stays inside.
    assert ran["distinct_id"] == "set-inside-the-task"
    assert ran["properties"]["$session_id"] == "session-eager"
    assert ran["properties"]["plan"] == "pro"
    assert ran["properties"]["celery_task_id"] == result.id
    assert ran["properties"]["celery_task_name"] == f"{prefix}.tag_and_capture"
    assert "$current_url" not in ran["properties"]
    assert "$request_path" not in ran["properties"]


def test_apply_inherits_the_callers_identity(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(always_eager=False)
    with client.new_context(fresh=True):
        request_like_context()
        app.tasks[f"{prefix}.capture"].apply(("applied",))
        assert "celery_task_id" not in get_tags()
    [applied] = delivered(client, sink, event="applied")
    assert applied["distinct_id"] == "user-eager"
    assert applied["properties"]["plan"] == "pro"


def test_an_eager_task_outside_any_context_runs_anonymous_and_leaves_no_context(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app()
    app.tasks[f"{prefix}.tag_and_capture"].delay("outside", "leaky", "yes")
    assert get_context_distinct_id() is None
    assert get_tags() == {}
    app.tasks[f"{prefix}.capture"].delay("anonymous")
    [anonymous] = delivered(client, sink, event="anonymous")
    assert anonymous["properties"]["$process_person_profile"] is False
    assert "leaky" not in anonymous["properties"]


def test_a_nested_eager_task_gives_the_outer_task_its_context_back(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app()
    with client.new_context(fresh=True):
        identify_context("user-nested")
        outer = app.tasks[f"{prefix}.call_eagerly"].delay("nested")
    events = {e["event"]: e for e in delivered(client, sink)}
    inner_event, outer_event = events["nested inner"], events["nested outer"]
    assert inner_event["distinct_id"] == outer_event["distinct_id"] == "user-nested"
    assert outer_event["properties"]["celery_task_id"] == outer.id
    assert outer_event["properties"]["celery_task_name"] == f"{prefix}.call_eagerly"
    assert inner_event["properties"]["celery_task_name"] == f"{prefix}.capture"
    assert inner_event["properties"]["celery_task_id"] != outer.id


@pytest.mark.parametrize("how", ["globally", "per call"])
def test_an_eager_task_not_propagated_runs_anonymous(
        how: str, eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(**({"propagate": False} if how == "globally" else {}))
    headers = {"posthog_propagate": False} if how == "per call" else None
    with client.new_context(fresh=True):
        request_like_context()
        app.tasks[f"{prefix}.capture"].apply_async(("not propagated",), headers=headers)
        assert get_context_distinct_id() == "user-eager"
    [event] = delivered(client, sink, event="not propagated")
    assert event["properties"]["$process_person_profile"] is False
    assert "plan" not in event["properties"]
    assert "$session_id" not in event["properties"]
    assert event["properties"]["celery_task_name"] == f"{prefix}.capture"


def test_an_eager_retry_keeps_the_identity_and_is_not_an_error(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(capture_task_events=True)
    with client.new_context(fresh=True):
        identify_context("user-eager-retry")
        app.tasks[f"{prefix}.retry_once"].delay("eager attempt")
        assert get_tags() == {}
    events = delivered(client, sink)
    attempts = [e for e in events if e["event"] == "eager attempt"]
    assert sorted(e["properties"]["attempt"] for e in attempts) == [0, 1]
    assert {e["distinct_id"] for e in attempts} == {"user-eager-retry"}
    assert not [e for e in events if e["event"] == "$exception"]
    assert [e["event"] for e in events if e["event"].startswith("celery task ")].count(
        "celery task retried") == 1


@pytest.mark.parametrize("task", ["ignore", "reject", "expected_failure"])
def test_eager_control_flow_and_declared_errors_are_not_reported(
        task: str, eager_app: EagerApp,
        sink: LocalSink) -> None:
    app, client, prefix = eager_app()
    with client.new_context(fresh=True):
        identify_context("user-control")
        app.tasks[f"{prefix}.{task}"].apply((f"{task} eagerly",))
    events = delivered(client, sink)
    assert [e["event"] for e in events] == [f"{task} eagerly"]


def test_an_eager_failure_is_captured_once_even_when_it_propagates_to_the_caller(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(capture_task_events=True)
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError, match="card declined"), client.new_context(fresh=True):
        identify_context("user-eager-failure")
        tag("$current_url", "https://shop.example/pay")
        app.tasks[f"{prefix}.fail"].delay("card declined")
    events = delivered(client, sink)
    exceptions = [e for e in events if e["event"] == "$exception"]
    assert len(exceptions) == 1, exceptions
    [error] = exceptions
    assert error["distinct_id"] == "user-eager-failure"
    assert error["properties"]["$exception_source"] == "celery.task_failure"
    assert error["properties"]["celery_task_name"] == f"{prefix}.fail"
    assert "$current_url" not in error["properties"]
    [entry] = error["properties"]["$exception_list"]
    assert entry["mechanism"] == {**entry["mechanism"], "type": "task", "handled": False}
    [failed] = [e for e in events if e["event"] == "celery task failed"]
    assert failed["distinct_id"] == "user-eager-failure"
    assert failed["properties"]["duration_ms"] >= 0


def test_capture_failures_off_reports_no_exception(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(capture_failures=False)
    result = app.tasks[f"{prefix}.fail"].delay("not reported")
    assert result.failed()
    assert [e["event"] for e in delivered(client, sink)] == ["about to fail"]


def test_lifecycle_events_are_off_by_default(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app()
    app.tasks[f"{prefix}.capture"].delay("quiet")
    assert [e["event"] for e in delivered(client, sink)] == ["quiet"]


def test_lifecycle_events_have_a_duration_and_the_task_tags(
        eager_app: EagerApp, sink: LocalSink) -> None:
    app, client, prefix = eager_app(capture_task_events=True)
    with client.new_context(fresh=True):
        identify_context("user-events")
        result = app.tasks[f"{prefix}.capture"].delay("counted")
    events = delivered(client, sink)
    assert [e["event"] for e in events] == ["celery task started", "counted",
                                            "celery task succeeded"]
    started, _, succeeded = events
    for event in (started, succeeded):
        assert event["distinct_id"] == "user-events"
        assert event["properties"]["celery_task_id"] == result.id
        assert event["properties"]["celery_task_name"] == f"{prefix}.capture"
    assert "duration_ms" not in started["properties"]
    assert 0 <= succeeded["properties"]["duration_ms"] < 60_000
