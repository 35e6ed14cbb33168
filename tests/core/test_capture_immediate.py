"""capture_immediate and acapture_immediate: one event sent now, bounded, over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.sink import LocalSink, ScriptedResponse
from posthog_integrations.testing import capture_events
from tests.conftest import API_KEY, ClientFactory
from tests.core.async_ticks import ticks_while

SLACK = 5.0


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_the_event_is_delivered_now_and_built_as_capture_builds_it(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(flush_interval=60, super_properties={"app": "api"})
    with client.new_context():
        posthog.tag("plan", "pro")
        delivered = client.capture_immediate("paid", distinct_id="u",
                                             properties={"total": 42}, uuid=None)
        client.capture("queued", distinct_id="u")

    assert delivered is True
    [event] = sink.events()  # at the sink already: no flush; the queued one still waits
    assert event["event"] == "paid"
    assert event["distinct_id"] == "u"
    assert (event["properties"]["total"], event["properties"]["plan"],
            event["properties"]["app"]) == (42, "pro", "api")
    stats = client.stats()
    assert (stats.accepted, stats.sent, stats.queued) == (2, 1, 1)


def test_a_transient_failure_is_retried(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(503)
    client = make_client()
    assert client.capture_immediate("retried", distinct_id="u") is True
    first, second = sink.requests()
    assert (first.status, second.status) == (503, 200)
    assert first.uuids == second.uuids
    assert client.stats().retried == 1
    assert client.stats().sent == 1


def test_a_hanging_endpoint_gives_false_within_the_timeout(
        sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(*[ScriptedResponse(hang=True)] * 10)
    client = make_client()
    started = time.monotonic()
    assert client.capture_immediate("stuck", distinct_id="u", timeout=0.5) is False
    assert time.monotonic() - started < 0.5 + SLACK
    assert client.stats().dropped_by_reason["failed"] == 1


def test_an_unreachable_host_gives_false_and_counts_it(make_client: ClientFactory) -> None:
    client = make_client(host=closed_port_url())
    assert client.capture_immediate("lost", distinct_id="u", timeout=3) is False
    stats = client.stats()
    assert (stats.sent, stats.dropped_by_reason["failed"], stats.failed_batches) == (0, 1, 1)


def test_a_final_status_is_not_retried(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(400)
    client = make_client()
    assert client.capture_immediate("bad", distinct_id="u") is False
    assert len(sink.requests()) == 1


def test_before_send_sees_the_event_and_can_drop_it(sink: LocalSink,
                                                    make_client: ClientFactory) -> None:
    seen: list[str] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(event["event"])
        return None if event["event"] == "secret" else event

    client = make_client(before_send=before_send)
    assert client.capture_immediate("secret", distinct_id="u") is False
    assert client.capture_immediate("public", distinct_id="u") is True
    assert seen == ["secret", "public"]
    assert [e["event"] for e in sink.events()] == ["public"]
    assert client.stats().dropped_by_reason["before_send"] == 1


@pytest.mark.parametrize("arguments", [
    {"event": ""},
    {"event": 42},
    {"event": "ok", "timeout": -1},
    {"event": "ok", "timeout": "soon"},
    {"event": "ok", "timeout": float("nan")},
])
def test_bad_input_gives_false_never_an_exception(sink: LocalSink, make_client: ClientFactory,
                                                  arguments: dict[str, Any]) -> None:
    client = make_client()
    event = arguments.pop("event")
    assert client.capture_immediate(event, distinct_id="u", **arguments) is False
    assert client.stats().dropped_by_reason["invalid"] == 1
    assert sink.requests() == []


def test_a_raising_before_send_gives_false(make_client: ClientFactory) -> None:
    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    client = make_client(before_send=before_send)
    assert client.capture_immediate("x", distinct_id="u") is False
    assert client.stats().dropped_by_reason["before_send"] == 1


def test_a_shut_down_client_refuses(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.shutdown()
    assert client.capture_immediate("late", distinct_id="u") is False
    assert client.stats().dropped_by_reason["shutdown"] == 1
    assert sink.requests() == []


def test_a_disabled_client_refuses_and_counts_it() -> None:
    client = Client(API_KEY, disabled=True)
    assert client.capture_immediate("x", distinct_id="u") is False
    assert client.stats().dropped_by_reason["disabled"] == 1


def test_a_client_that_does_not_send_gives_false(sink: LocalSink,
                                                 make_client: ClientFactory) -> None:
    client = make_client(send=False)
    assert client.capture_immediate("x", distinct_id="u") is False
    assert client.stats().accepted == 1
    assert sink.requests() == []


def test_while_recording_the_event_is_recorded_and_true() -> None:
    client = Client(disabled=True)
    with capture_events() as events:
        assert client.capture_immediate("recorded", distinct_id="u") is True
    assert events.one("recorded")["distinct_id"] == "u"


def test_sync_mode_clients_deliver_it_too(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(sync_mode=True)
    assert client.capture_immediate("now", distinct_id="u") is True
    assert [e["event"] for e in sink.events()] == ["now"]


def test_an_oversized_event_is_dropped_and_counted(sink: LocalSink,
                                                   make_client: ClientFactory) -> None:
    client = make_client()
    assert client.capture_immediate("big", distinct_id="u",
                                    properties={"blob": "x" * 1_000_000}) is False
    assert client.stats().dropped_by_reason["oversize"] == 1
    assert sink.requests() == []


def test_acapture_immediate_does_not_block_the_loop(sink: LocalSink,
                                                    make_client: ClientFactory) -> None:
    sink.script(ScriptedResponse(delay=1.5))
    client = make_client()

    async def in_a_task_context() -> tuple[bool, int]:
        with client.new_context():
            posthog.tag("handler", "webhook")
            return await ticks_while(client.acapture_immediate("async", distinct_id="u"))

    delivered, ticks = asyncio.run(in_a_task_context())

    assert delivered is True
    assert ticks >= 20
    [event] = sink.events()
    assert event["properties"]["handler"] == "webhook"  # built in the awaiting task's context


def test_acapture_immediate_is_bounded_by_its_timeout(sink: LocalSink,
                                                      make_client: ClientFactory) -> None:
    sink.script(*[ScriptedResponse(hang=True)] * 10)
    client = make_client()
    started = time.monotonic()
    assert asyncio.run(client.acapture_immediate("stuck", distinct_id="u", timeout=0.5)) is False
    assert time.monotonic() - started < 0.5 + SLACK


def test_module_level_calls_go_to_the_contexts_client(sink: LocalSink,
                                                      make_client: ClientFactory) -> None:
    client = make_client()
    with client.new_context():
        assert posthog.capture_immediate("sync", distinct_id="u") is True
        assert asyncio.run(posthog.acapture_immediate("async", distinct_id="u")) is True
    assert sorted(e["event"] for e in sink.events()) == ["async", "sync"]
    assert client.stats().sent == 2


def test_in_capture_v1_mode_it_speaks_v1_and_a_dropped_event_is_not_delivered(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1")
    assert client.capture_immediate("paid", distinct_id="u") is True
    sink.script(ScriptedResponse(results=("drop:billing_limit_exceeded",)))
    assert client.capture_immediate("refused", distinct_id="u") is False

    first, second = sink.requests()
    assert first.path == second.path == "/i/v1/analytics/events"
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert [event["event"] for event in sink.events()] == ["paid"]
    stats = client.stats()
    assert (stats.sent, stats.dropped_by_reason["rejected"]) == (1, 1)
    assert stats.rejected_by_details == {"billing_limit_exceeded": 1}
