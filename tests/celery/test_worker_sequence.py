"""A real ``celery worker -P prefork --concurrency 1``: every task runs in the same child
process, one after the other, so what one task leaves behind would show in the next, and a
later task's event arriving means every earlier one's have too."""

from __future__ import annotations

import pytest

from posthog_integrations import identify_context, set_context_session, tag
from posthog_integrations.sink import LocalSink
from tests.celery.conftest import (
    Producer,
    StartWorker,
    Worker,
    events_of_task,
    unique,
    wait_for_events,
    wait_for_task_event,
)


@pytest.fixture(scope="module")
def worker(start_worker: StartWorker) -> Worker:
    return start_worker(concurrency=1)


def test_a_task_published_outside_a_context_runs_anonymous_after_an_identified_one(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    first, second = unique("first task"), unique("second task")
    with producer.client.new_context(fresh=True):
        identify_context("user-first")
        set_context_session("session-first")
        tag("plan", "pro")
        producer.task("tag_and_capture").apply_async((first, "leaky", "yes"),
                                                      queue=worker.queue)
    [identified] = wait_for_events(module_sink, first)
    assert identified["distinct_id"] == "set-inside-the-task"
    assert identified["properties"]["plan"] == "pro"
    assert identified["properties"]["leaky"] == "yes"

    anonymous_task = producer.task("capture").apply_async((second,), queue=worker.queue)
    [anonymous] = wait_for_events(module_sink, second)
    properties = anonymous["properties"]
    assert anonymous["distinct_id"] not in {"user-first", "set-inside-the-task"}
    assert properties["$process_person_profile"] is False
    assert "$session_id" not in properties
    assert "plan" not in properties
    assert "leaky" not in properties
    assert properties["celery_task_id"] == anonymous_task.id
    assert properties["pid"] == identified["properties"]["pid"], "not the same worker process"


def test_a_retried_task_keeps_its_identity_and_is_not_an_error(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    event = unique("sync attempted")
    with producer.client.new_context(fresh=True):
        identify_context("user-retry")
        tag("plan", "team")
        result = producer.task("retry_once").apply_async((event,), queue=worker.queue)
    attempts = sorted(wait_for_events(module_sink, event, count=2),
                      key=lambda e: e["properties"]["attempt"])
    assert [e["properties"]["attempt"] for e in attempts] == [0, 1]
    for attempt in attempts:
        assert attempt["distinct_id"] == "user-retry"
        assert attempt["properties"]["plan"] == "team"
        assert attempt["properties"]["celery_task_id"] == result.id
    assert [e["properties"]["celery_retry_count"] for e in attempts] == [0, 1]
    wait_for_task_event(module_sink, result.id, "celery task succeeded")
    names = sorted(e["event"] for e in events_of_task(module_sink, result.id))
    assert "$exception" not in names
    assert names.count("celery task retried") == 1
    retried = wait_for_task_event(module_sink, result.id, "celery task retried")
    assert retried["distinct_id"] == "user-retry"


@pytest.mark.parametrize("task", ["ignore", "reject", "expected_failure"])
def test_control_flow_and_declared_errors_are_not_reported(
        task: str, worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    event, after = unique(f"{task} ran"), unique("next task ran")
    with producer.client.new_context(fresh=True):
        identify_context("user-control-flow")
        result = producer.task(task).apply_async((event,), queue=worker.queue)
    producer.task("capture").apply_async((after,), queue=worker.queue)
    [ran] = wait_for_events(module_sink, event)
    assert ran["distinct_id"] == "user-control-flow"
    wait_for_events(module_sink, after)  # run after it, by the same process and client
    names = [e["event"] for e in events_of_task(module_sink, result.id)]
    assert "$exception" not in names
    assert not [e for e in module_sink.events(event="$exception")
                if e["properties"].get("celery_task_name") == f"worker.{task}"]
