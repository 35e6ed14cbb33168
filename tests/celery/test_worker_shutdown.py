"""A prefork child that exits sends what it captured first: its client would otherwise die
with it (the pool ends children with ``os._exit``, which runs no exit handler). The workers
here send every 60 s only, so an event that arrives was sent by the exit flush."""

from __future__ import annotations

import time

from posthog_integrations import identify_context
from posthog_integrations.sink import LocalSink
from tests.celery.conftest import Producer, StartWorker, unique, wait_for_events

SLOW_SENDER = 60.0


def test_a_child_recycled_by_max_tasks_per_child_sends_its_events_first(
        start_worker: StartWorker, producer: Producer, module_sink: LocalSink) -> None:
    worker = start_worker(concurrency=1, flush_interval=SLOW_SENDER,
                          extra=("--max-tasks-per-child", "1"))
    event = unique("report built")
    with producer.client.new_context(fresh=True):
        identify_context("user-recycled")
        producer.task("capture").apply_async((event,), queue=worker.queue)
    [built] = wait_for_events(module_sink, event)
    assert built["distinct_id"] == "user-recycled"
    assert worker.process.poll() is None, "the worker itself is still running"


def test_sigterm_during_tasks_loses_none_of_their_events(
        start_worker: StartWorker, producer: Producer, module_sink: LocalSink,
        ) -> None:
    worker = start_worker(concurrency=2, flush_interval=SLOW_SENDER)
    events = [unique("export"), unique("export")]
    ready = [worker.tmp / f"ready-{index}" for index in range(2)]
    task_ids = []
    for index, (event, ready_file) in enumerate(zip(events, ready)):
        with producer.client.new_context(fresh=True):
            identify_context(f"user-{index}")
            result = producer.task("sleep_then_capture").apply_async(
                (event, 3.0, str(ready_file)), queue=worker.queue)
            task_ids.append(result.id)
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, f"the tasks did not start:\n{worker.output()}"
        time.sleep(0.05)
    assert not module_sink.events(event=f"{events[0]} began"), "sent before the exit"

    status = worker.terminate()

    assert status == 0, worker.output()
    for index, event in enumerate(events):
        for phase in ("began", "ended"):
            [arrived] = wait_for_events(module_sink, f"{event} {phase}", timeout=5)
            assert arrived["distinct_id"] == f"user-{index}"
            assert arrived["properties"]["celery_task_id"] == task_ids[index]
        [succeeded] = [e for e in module_sink.events(event="celery task succeeded")
                       if e["properties"]["celery_task_id"] == task_ids[index]]
        assert succeeded["distinct_id"] == f"user-{index}"
