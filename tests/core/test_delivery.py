"""Delivery over real loopback HTTP: retries, flush, shutdown, overflow, threads."""

from __future__ import annotations

import email.utils
import threading
import time
from typing import Any

import pytest

from posthog_integrations import APIError
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY, ClientFactory
from tests.loopback import LoopbackServer, flood_error

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
    assert time.monotonic() - started < 3  # the timeout, not the 30 s request timeout
    started = time.monotonic()
    client.shutdown(timeout=1)  # idempotent: a second call returns promptly, never raises
    assert time.monotonic() - started < 3  # the timeout, not the 30 s request timeout
    assert client.capture("late", distinct_id="u") is None
    # the event in the hung request, and the refused one
    assert client.stats().dropped_by_reason["shutdown"] == 2


def test_shutdown_counts_the_events_in_flight_and_queued_once(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script(ScriptedResponse(hang=True))
    client = make_client(timeout=30, flush_at=1)
    others = set(sender_threads())
    client.capture("in flight", distinct_id="u")
    [thread] = set(sender_threads()) - others
    deadline = time.monotonic() + 5
    while not sink.requests():
        assert time.monotonic() < deadline, "the first request never arrived"
        time.sleep(0.01)
    client.capture("queued 1", distinct_id="u")
    client.capture("queued 2", distinct_id="u")
    assert client.shutdown(timeout=0.5) is False

    stats = client.stats()
    assert (stats.accepted, stats.queued, stats.sent) == (3, 0, 0)
    assert stats.dropped_by_reason["shutdown"] == 3
    assert "3 events were not sent" in caplog.text
    # Releasing the hung request ends the sender's attempt: its event is not counted twice.
    sink.stop()
    thread.join(5)
    assert not thread.is_alive()
    after = client.stats()
    assert after.dropped == after.dropped_by_reason["shutdown"] == 3
    assert after.failed_batches == 0


def test_flush_waits_only_for_what_was_queued_before_it(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    """Other threads keep capturing: flush() returns once its own events are delivered."""
    sink.script(*[ScriptedResponse(delay=0.02)] * 5000)  # the queue is never empty for long
    client = make_client(flush_at=10, flush_interval=0.05)
    stop = threading.Event()

    def keep_capturing() -> None:
        while not stop.is_set():
            client.capture("background", distinct_id="other")
            time.sleep(0.001)

    producers = [threading.Thread(target=keep_capturing) for _ in range(3)]
    for producer in producers:
        producer.start()
    try:
        time.sleep(0.2)
        mine = [client.capture("mine", distinct_id="u", properties={"i": i}) for i in range(20)]
        flushed = client.flush(timeout=5)
        arrived = {event["uuid"] for event in sink.events(event="mine")}
    finally:
        stop.set()
        for producer in producers:
            producer.join()
    assert flushed
    assert arrived == set(mine)


def test_error_bodies_are_redacted_before_they_are_cut(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    body = ("x" * 190 + API_KEY + "y" * 50).encode()  # the key straddles the 200th character
    sink.script(ScriptedResponse(400, body=body))
    errors: list[Exception] = []
    client = make_client(on_error=lambda error, batch: errors.append(error))
    client.capture("e", distinct_id="u")
    assert client.flush()
    [error] = errors
    assert isinstance(error, APIError)
    texts = {"str(error)": str(error), "error.message": error.message, "logs": caplog.text}
    pieces = {API_KEY[i:i + 8] for i in range(len(API_KEY) - 7)}
    leaks = {(where, piece) for where, text in texts.items() for piece in pieces if piece in text}
    assert leaks == set()
    assert "<api key>" in error.message
    assert len(error.message) <= 200


def test_only_the_start_of_an_error_body_is_read(make_client: ClientFactory) -> None:
    """A 64 MiB error body is not read into memory: the sender reads a few KiB and hangs up."""
    length = 64 * 1024 * 1024
    errors: list[Exception] = []
    with LoopbackServer(flood_error(400, length)) as server:
        client = make_client(host=server.url, on_error=lambda error, batch: errors.append(error))
        client.capture("e", distinct_id="u")
        assert client.flush(timeout=30)
    [error] = errors
    assert isinstance(error, APIError)
    assert error.status == 400
    assert len(error.message) <= 200
    # What the kernel buffers between the two sockets gets through; the rest was never sent.
    assert server.bytes_written < 16 * 1024 * 1024, server.bytes_written


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
