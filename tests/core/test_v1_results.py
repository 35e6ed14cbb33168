"""Capture v1 answers: per-event results, partial retries, the retry policy, stats, on_error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from posthog_integrations.core.capture_v1 import CaptureRejected, RetriesExhausted
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import ClientFactory


def raw_events(raw: bytes) -> list[bytes]:
    """Each event of a plain (uncompressed) v1 body, as the bytes it was sent as."""
    batch = json.loads(raw)["batch"]
    return [json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            for event in batch]


def test_partial_results_resend_only_the_retry_events(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = make_client(capture_mode="v1", gzip=False,
                         on_error=lambda error, events: errors.append((error, events)))
    sink.script(ScriptedResponse(results=("ok", "drop:billing_limit_exceeded", "retry")))
    ids = [client.capture(f"e{index}", distinct_id="u") for index in range(3)]
    assert client.flush(timeout=10)

    first, second = sink.requests()
    assert first.uuids == ids
    assert second.uuids == [ids[2]]
    assert second.headers["posthog-request-id"] == first.headers["posthog-request-id"]
    assert (first.headers["posthog-attempt"], second.headers["posthog-attempt"]) == ("1", "2")
    assert (second.headers["posthog-request-timestamp"]
            != first.headers["posthog-request-timestamp"])
    assert second.body["created_at"] == first.body["created_at"]
    # The retried event is resent byte for byte: same uuid, same timestamp, same properties.
    [resent] = raw_events(second.raw)
    assert resent in first.raw
    assert second.events[0]["timestamp"] == first.events[2]["timestamp"]
    # The sink's default Retry-After: 1 on a partial answer is a floor for the backoff.
    assert second.received_at - first.received_at >= 0.9

    assert sorted(e["uuid"] for e in sink.events()) == sorted([ids[0], ids[2]])
    stats = client.stats()
    assert stats.sent == 2
    assert stats.dropped_by_reason["rejected"] == 1
    assert stats.rejected_by_details == {"billing_limit_exceeded": 1}
    assert stats.retried == 1
    [(error, events)] = errors
    assert isinstance(error, CaptureRejected)
    assert "billing_limit_exceeded" in str(error)
    assert error.drops == [(ids[1], "billing_limit_exceeded")]
    assert [e["uuid"] for e in events] == [ids[1]]


def test_ok_warning_limited_unknown_and_missing_results_are_done(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(capture_mode="v1")
    sink.script(ScriptedResponse(results=("ok", "warning:person_processing_disabled",
                                          "limited", "something_new")))
    for index in range(5):
        client.capture(f"e{index}", distinct_id="u")
    assert client.flush()
    assert len(sink.requests()) == 1
    assert client.stats().sent == 5
    assert client.stats().dropped == 0


@pytest.mark.parametrize("body", [b"not json", b'{"results": []}', b'{"status": 1}', b""])
def test_an_unreadable_2xx_answer_is_done_without_a_resend(
    sink: LocalSink, make_client: ClientFactory, body: bytes
) -> None:
    client = make_client(capture_mode="v1")
    sink.script(ScriptedResponse(body=body))
    client.capture("e", distinct_id="u")
    assert client.flush()
    assert len(sink.requests()) == 1
    assert client.stats().sent == 1


def test_retry_after_on_an_error_is_a_floor(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1")
    sink.script(ScriptedResponse(503, retry_after="1"))
    client.capture("e", distinct_id="u")
    assert client.flush(timeout=10)
    first, second = sink.requests()
    assert second.received_at - first.received_at >= 0.9
    assert second.headers["posthog-attempt"] == "2"
    assert second.headers["posthog-request-id"] == first.headers["posthog-request-id"]
    assert second.body == first.body
    assert len(sink.events()) == 1


@pytest.mark.parametrize("status", [404, 408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(
    sink: LocalSink, make_client: ClientFactory, status: int
) -> None:
    client = make_client(capture_mode="v1")
    sink.script(ScriptedResponse(status, retry_after="0"))
    uuid = client.capture("e", distinct_id="u")
    assert client.flush(timeout=10)
    assert [r.status for r in sink.requests()] == [status, 200]
    assert [e["uuid"] for e in sink.events()] == [uuid]


@pytest.mark.parametrize("status", [307, 400, 401, 402, 403, 405, 413, 415, 422])
def test_terminal_statuses_are_sent_once(
    sink: LocalSink, make_client: ClientFactory, status: int
) -> None:
    errors: list[Exception] = []
    client = make_client(capture_mode="v1", on_error=lambda error, events: errors.append(error))
    sink.script(status)
    client.capture("e", distinct_id="u")
    client.flush(timeout=10)
    assert [r.status for r in sink.requests()] == [status]
    assert client.stats().dropped_by_reason["failed"] == 1
    assert len(errors) == 1
    assert f"HTTP {status}" in str(errors[0])


def test_max_retries_bounds_the_requests(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1", max_retries=3)
    sink.script(*[ScriptedResponse(503, retry_after="0")] * 5)
    client.capture("e", distinct_id="u")
    client.flush(timeout=10)
    requests = sink.requests()
    assert [r.status for r in requests] == [503] * 4
    assert [r.headers["posthog-attempt"] for r in requests] == ["1", "2", "3", "4"]
    assert len({r.headers["posthog-request-id"] for r in requests}) == 1
    assert client.stats().dropped_by_reason["failed"] == 1
    assert client.stats().failed_batches == 1


def test_connection_errors_are_retried(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1")
    sink.script(ScriptedResponse(drop_connection=True))
    client.capture("e", distinct_id="u")
    assert client.flush(timeout=10)
    first, second = sink.requests()
    assert second.headers["posthog-request-id"] == first.headers["posthog-request-id"]
    assert second.headers["posthog-attempt"] == "2"
    assert len(sink.events()) == 1


def test_retries_still_pending_after_the_last_attempt_fail(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = make_client(capture_mode="v1", max_retries=2,
                         on_error=lambda error, events: errors.append((error, events)))
    always_retry = ScriptedResponse(results=lambda events: {e["uuid"]: "retry" for e in events},
                                    retry_after="0")
    sink.script(ScriptedResponse(results=("ok", "retry"), retry_after="0"),
                always_retry, always_retry)
    ids = [client.capture(f"e{index}", distinct_id="u") for index in range(2)]
    client.flush(timeout=10)
    requests = sink.requests()
    assert [r.uuids for r in requests] == [ids, [ids[1]], [ids[1]]]
    assert [e["uuid"] for e in sink.events()] == [ids[0]]
    stats = client.stats()
    assert stats.sent == 1
    assert stats.dropped_by_reason["failed"] == 1
    [(error, events)] = errors
    assert isinstance(error, RetriesExhausted)
    assert [e["uuid"] for e in events] == [ids[1]]


def test_sync_mode_uses_v1_and_its_partial_retries(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(capture_mode="v1", sync_mode=True)
    sink.script(ScriptedResponse(results=("retry",), retry_after="0"))
    uuid = client.capture("e", distinct_id="u")
    assert [r.uuids for r in sink.requests()] == [[uuid], [uuid]]
    assert [e["uuid"] for e in sink.events()] == [uuid]
