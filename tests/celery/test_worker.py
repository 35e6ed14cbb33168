"""A real ``celery worker -P prefork --concurrency 2`` on a real Redis: what a task's events
carry, and how a failure is reported."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
    return start_worker(concurrency=2)


@contextlib.contextmanager
def request_context(producer: Producer, user: str) -> Iterator[None]:
    """A context like a web request's: identity, session, an app tag and request tags."""
    with producer.client.new_context(fresh=True):
        identify_context(user)
        set_context_session("session-7")
        tag("plan", "pro")
        for name, value in {"$current_url": "https://shop.example/cart?coupon=SECRET",
                            "$request_path": "/cart", "$request_method": "POST",
                            "$user_agent": "Firefox", "$ip": "203.0.113.9",
                            "$request_id": "r-1"}.items():
            tag(name, value)
        yield


def test_a_task_runs_with_the_publishers_identity_session_and_allowed_tags(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    event = unique("order shipped")
    with request_context(producer, "user-42"):
        result = producer.task("capture").apply_async((event,), queue=worker.queue)
    [shipped] = wait_for_events(module_sink, event)
    properties = shipped["properties"]
    assert shipped["distinct_id"] == "user-42"
    assert properties["$session_id"] == "session-7"
    assert properties["plan"] == "pro"
    assert properties["celery_task_name"] == "worker.capture"
    assert properties["celery_task_id"] == result.id
    assert properties["celery_retry_count"] == 0
    for request_tag in ("$current_url", "$request_path", "$request_method", "$user_agent", "$ip",
                        "$request_id"):
        assert request_tag not in properties, request_tag
    assert "$process_person_profile" not in properties


def test_a_failed_task_is_captured_once_with_the_identity_and_task_tags(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    message = unique("payment declined")
    with request_context(producer, "user-failing"):
        result = producer.task("fail").apply_async((message,), queue=worker.queue)
    # The lifecycle event is captured after the failure, by the same process and client: once
    # it arrived, any second report would have too.
    failed_event = wait_for_task_event(module_sink, result.id, "celery task failed")
    exceptions = [e for e in events_of_task(module_sink, result.id) if e["event"] == "$exception"]
    assert len(exceptions) == 1, exceptions
    [error] = exceptions
    properties = error["properties"]
    assert error["distinct_id"] == "user-failing"
    assert properties["$session_id"] == "session-7"
    assert properties["plan"] == "pro"
    assert properties["celery_task_name"] == "worker.fail"
    assert properties["$exception_source"] == "celery.task_failure"
    [entry] = properties["$exception_list"]
    assert entry["type"] == "ValueError"
    assert entry["value"] == message
    assert entry["mechanism"]["type"] == "task"
    assert entry["mechanism"]["handled"] is False
    assert "$current_url" not in properties
    assert failed_event["properties"]["duration_ms"] >= 0


def test_lifecycle_events_carry_the_task_tags_and_a_duration(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    event = unique("invoice sent")
    with producer.client.new_context(fresh=True):
        identify_context("user-lifecycle")
        result = producer.task("capture").apply_async((event,), queue=worker.queue)
    succeeded = wait_for_task_event(module_sink, result.id, "celery task succeeded")
    found = {e["event"]: e for e in events_of_task(module_sink, result.id)}
    assert set(found) == {"celery task started", event, "celery task succeeded"}
    assert succeeded["distinct_id"] == "user-lifecycle"
    assert succeeded["properties"]["celery_task_name"] == "worker.capture"
    assert isinstance(succeeded["properties"]["duration_ms"], (int, float))
    assert 0 <= succeeded["properties"]["duration_ms"] < 60_000
    assert "duration_ms" not in found["celery task started"]["properties"]


def test_a_task_published_by_a_task_keeps_the_identity(
        worker: Worker, producer: Producer, module_sink: LocalSink) -> None:
    event = unique("child task ran")
    with producer.client.new_context(fresh=True):
        identify_context("user-chain")
        parent = producer.task("publish_child").apply_async((event, worker.queue),
                                                            queue=worker.queue)
    [child] = wait_for_events(module_sink, event)
    assert child["distinct_id"] == "user-chain"
    assert child["properties"]["parent_tag"] == "kept"
    assert child["properties"]["celery_task_name"] == "worker.capture"
    assert child["properties"]["celery_task_id"] != parent.id
