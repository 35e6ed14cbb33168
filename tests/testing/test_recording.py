"""capture_events() and the posthog_events fixture: what an app captured, kept in memory."""

from __future__ import annotations

import threading

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from posthog_integrations.testing import CapturedEvents, capture_events
from tests.conftest import ClientFactory, delivered


def test_records_a_configured_client_and_sends_nothing(make_client: ClientFactory,
                                                       sink: LocalSink) -> None:
    client = make_client()
    with capture_events() as events:
        client.capture("signed up", distinct_id="user-1", properties={"plan": "pro"})
    assert delivered(client, sink) == []
    event = events.one("signed up")
    assert (event["distinct_id"], event["properties"]["plan"]) == ("user-1", "pro")
    assert event["uuid"]
    assert event["timestamp"]


def test_after_the_block_the_client_sends_again(make_client: ClientFactory,
                                                sink: LocalSink) -> None:
    client = make_client()
    with capture_events() as events:
        client.capture("recorded", distinct_id="user-1")
    client.capture("sent", distinct_id="user-1")
    assert events.names() == ["recorded"]
    assert [e["event"] for e in delivered(client, sink)] == ["sent"]


def test_a_client_without_a_key_records_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    client = Client()
    assert client.disabled
    with capture_events() as events:
        with posthog.new_context(client=client):
            posthog.identify_context("user-7")
            posthog.tag("plan", "pro")
            client.capture("upgraded")
            client.capture_exception(ValueError("card declined"))
    assert events.names() == ["upgraded", "$exception"]
    assert events.for_distinct_id("user-7") == list(events)
    assert events.one("upgraded")["properties"]["plan"] == "pro"
    assert events.one("$exception")["properties"]["$exception_list"][0]["type"] == "ValueError"
    client.capture("after")
    assert len(events) == 2


def test_before_send_applies_to_what_is_recorded(make_client: ClientFactory) -> None:
    def redact(event: dict[str, object]) -> dict[str, object] | None:
        return None if event["event"] == "secret" else event

    client = make_client(before_send=redact)
    with capture_events() as events:
        client.capture("secret", distinct_id="user-1")
        client.capture("public", distinct_id="user-1")
    assert events.names() == ["public"]


def test_the_finders(make_client: ClientFactory) -> None:
    client = make_client()
    with capture_events() as events:
        for name, user in [("viewed", "a"), ("viewed", "b"), ("bought", "a")]:
            client.capture(name, distinct_id=user)
    assert [e["distinct_id"] for e in events.named("viewed")] == ["a", "b"]
    assert [e["event"] for e in events.for_distinct_id("a")] == ["viewed", "bought"]
    assert events.one("viewed", distinct_id="b")["distinct_id"] == "b"
    with pytest.raises(AssertionError, match=r"expected one event \(name='viewed'\), found 2"):
        events.one("viewed")
    assert events[-1]["event"] == "bought"
    assert len(events[:2]) == 2
    assert "bought" in repr(events)
    events.clear()
    assert len(events) == 0


def test_threads_record_every_event(make_client: ClientFactory) -> None:
    client = make_client()

    def capture_many(thread: int) -> None:
        for number in range(500):
            client.capture("tick", distinct_id=f"thread-{thread}", properties={"n": number})

    with capture_events() as events:
        threads = [threading.Thread(target=capture_many, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(events) == 4000
    assert all(len(events.for_distinct_id(f"thread-{i}")) == 500 for i in range(8))


def test_blocks_nest(make_client: ClientFactory) -> None:
    client = make_client()
    with capture_events() as outer:
        client.capture("first", distinct_id="u")
        with capture_events() as inner:
            client.capture("second", distinct_id="u")
        client.capture("third", distinct_id="u")
    assert (outer.names(), inner.names()) == (["first", "third"], ["second"])


def test_the_fixture_is_registered_by_entry_point(pytestconfig: pytest.Config,
                                                  posthog_events: CapturedEvents) -> None:
    assert pytestconfig.pluginmanager.has_plugin("posthog_integrations")
    posthog.capture("from the facade", distinct_id="user-9")
    assert posthog_events.one("from the facade")["distinct_id"] == "user-9"
