"""Delivery over real loopback HTTP: retries, flush, shutdown, overflow, threads."""

from __future__ import annotations

import email.utils
import threading
import time
from typing import Any

import pytest

from posthog_integrations import APIError
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import ClientFactory

SENDER_THREAD = "posthog-integrations-sender"


def sender_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == SENDER_THREAD]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_transient_statuses_are_retried_with_the_same_events(
    sink: LocalSink, make_client: ClientFactory, status: int
) -> None:
    sink.script(status)
    client = make_client()
    client.capture("a", distinct_id="u")
    client.capture("b", distinct_id="u")
    assert client.flush()

    first, second = sink.requests()
    assert (first.status, second.status) == (status, 200)
    assert first.uuids == second.uuids
    assert [e["timestamp"] for e in first.events] == [e["timestamp"] for e in second.events]
    assert len(sink.events()) == 2
    assert client.stats().retried == 1


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_final_statuses_are_sent_once(
    sink: LocalSink, make_client: ClientFactory, status: int
) -> None:
    sink.script(status)
    failures: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = make_client(on_error=lambda error, batch: failures.append((error, batch)))
    uuid = client.capture("a", distinct_id="u")
    client.flush()

    assert [request.status for request in sink.requests()] == [status]
    [(error, batch)] = failures
    assert isinstance(error, APIError)
    assert error.status == status
    assert [event["uuid"] for event in batch] == [uuid]
    stats = client.stats()
    assert (stats.failed_batches, stats.dropped_by_reason["failed"], stats.sent) == (1, 1, 0)


def test_max_retries_bounds_the_attempts(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(*[503] * 10)
    client = make_client(max_retries=3)
    client.capture("a", distinct_id="u")
    client.flush(timeout=10)
    assert len(sink.requests()) == 4
    assert client.stats().retried == 3


def test_connection_errors_are_retried(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(drop_connection=True))
    client = make_client()
    client.capture("a", distinct_id="u")
    assert client.flush()
    assert len(sink.events()) == 1
    assert len(sink.requests()) == 2


def test_retry_after_seconds_is_a_floor(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(status=429, retry_after="1"))
    client = make_client()
    client.capture("a", distinct_id="u")
    assert client.flush()
    first, second = sink.requests()
    assert second.received_at - first.received_at >= 0.95


def test_retry_after_http_date(sink: LocalSink, make_client: ClientFactory) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    sink.script(ScriptedResponse(status=503, retry_after=when))
    client = make_client()
    client.capture("a", distinct_id="u")
    assert client.flush()
    first, second = sink.requests()
    assert second.received_at - first.received_at >= 0.9  # HTTP dates have 1 s resolution


def test_flush_with_nothing_waiting_sends_nothing(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    assert client.flush()
    client.capture("a", distinct_id="u")
    client.flush()
    assert client.flush()
    assert len(sink.requests()) == 1


def test_flush_at_sends_without_an_explicit_flush(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(flush_at=5, flush_interval=60)
    for _ in range(5):
        client.capture("a", distinct_id="u")
    sink.wait_for_events(5, timeout=1)


def test_flush_interval_sends_a_partial_batch(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(flush_at=100, flush_interval=0.2)
    client.capture("a", distinct_id="u")
    sink.wait_for_events(1, timeout=2)


def test_shutdown_is_bounded_against_a_hung_server(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    sink.script(ScriptedResponse(hang=True))
    client = make_client(timeout=30)
    client.capture("a", distinct_id="u")
    started = time.monotonic()
    assert client.shutdown(timeout=1) is False
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    client.shutdown(timeout=1)  # idempotent: a second call returns promptly, never raises
    assert time.monotonic() - started < 1.5
    assert client.capture("late", distinct_id="u") is None
    assert client.stats().dropped_by_reason["shutdown"] == 1


def test_capture_after_shutdown_is_refused_with_a_warning(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    client.shutdown()
    assert client.capture("late", distinct_id="u") is None
    assert "shut down" in caplog.text


def test_full_queue_drops_new_events_counts_and_warns_once(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(max_queue_size=10, flush_at=1000, flush_interval=60)
    results = [client.capture("burst", distinct_id="u") for _ in range(100)]
    assert sum(result is not None for result in results) == 10
    assert results[10:] == [None] * 90
    stats = client.stats()
    assert (stats.queued, stats.dropped_by_reason["queue_full"], stats.dropped) == (10, 90, 90)
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1
    assert "max_queue_size=10" in warnings[0].getMessage()


def test_large_backlog_is_split_by_batch_size(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(max_batch_size=50, flush_at=1000, flush_interval=60)
    for index in range(120):
        client.capture("e", distinct_id="u", properties={"i": index})
    client.flush()
    assert [len(request.uuids) for request in sink.requests()] == [50, 50, 20]
    assert [e["properties"]["i"] for e in sink.events()] == list(range(120))


def test_oversized_event_is_dropped_and_named(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    client.capture("huge", distinct_id="u", properties={"blob": "x" * (901 * 1024)})
    client.capture("small", distinct_id="u")
    client.flush()
    assert [event["event"] for event in sink.events()] == ["small"]
    assert client.stats().dropped_by_reason["oversize"] == 1
    assert "'huge'" in caplog.text
    assert "xxxxxxxxxx" not in caplog.text


def test_no_thread_before_the_first_event(make_client: ClientFactory) -> None:
    before = len(sender_threads())
    client = make_client()
    assert len(sender_threads()) == before
    client.capture("a", distinct_id="u")
    assert len(sender_threads()) == before + 1


def test_sync_mode_sends_in_the_calling_thread(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    sink.script(503)
    before = len(sender_threads())
    client = make_client(sync_mode=True)
    client.capture("a", distinct_id="u")
    assert len(sink.events()) == 1  # delivered, after one retry, before capture returned
    assert len(sink.requests()) == 2
    assert len(sender_threads()) == before


def test_send_false_accepts_but_never_transmits(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(send=False)
    assert client.capture("a", distinct_id="u") is not None
    client.flush()
    assert sink.requests() == []


def test_events_captured_during_a_retry_are_not_lost(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    sink.script(ScriptedResponse(status=503, delay=0.2))
    client = make_client(flush_at=1)
    client.capture("first", distinct_id="u")
    time.sleep(0.05)
    for index in range(20):
        client.capture("during", distinct_id="u", properties={"i": index})
    assert client.flush()
    uuids = [event["uuid"] for event in sink.events()]
    assert len(uuids) == 21 == len(set(uuids))


def test_concurrent_producers_lose_nothing(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(flush_at=50)

    def produce(worker: int) -> None:
        for index in range(250):
            client.capture("e", distinct_id=f"w{worker}", properties={"i": index})

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush()
    events = sink.events()
    assert len(events) == 2000
    assert len({event["uuid"] for event in events}) == 2000
    assert client.stats().sent == 2000
