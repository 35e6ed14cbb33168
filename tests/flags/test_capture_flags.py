"""``capture(..., flags=snapshot)`` (spec §6): the snapshot's values ride on the event, with no
request, and the caller's properties win."""

from __future__ import annotations

import datetime

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from tests.conftest import API_KEY
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer

FLAGS = {"flags": {
    "zeta": {"key": "zeta", "enabled": True},
    "alpha": {"key": "alpha", "enabled": True, "variant": "b"},
    "off": {"key": "off", "enabled": False},
    "failed": {"key": "failed", "enabled": True, "failed": True},
}}


def test_the_snapshot_values_ride_on_the_event_without_a_request(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    snapshot = client.evaluate_flags("u")
    client.capture("bought", distinct_id="u", flags=snapshot,
                   properties={"$feature/zeta": "caller wins", "total": 3})
    assert client.flush(timeout=5)

    assert len(flags_server.flags_requests) == 1
    [event] = flags_server.events_named("bought")
    properties = event["properties"]
    assert properties["$feature/alpha"] == "b"
    assert properties["$feature/off"] is False
    assert properties["$feature/zeta"] == "caller wins"
    assert "$feature/failed" not in properties
    assert properties["$active_feature_flags"] == ["alpha", "zeta"]  # sorted, enabled only
    assert properties["total"] == 3
    assert flags_server.events_named("$feature_flag_called") == []  # attaching is not reading


def test_an_empty_snapshot_adds_no_active_flags(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"featureFlags": {"off": False}})
    client = make_flags_client()
    client.capture("e", distinct_id="u", flags=client.evaluate_flags("u"))
    client.capture("e2", distinct_id="u", flags=client.evaluate_flags())
    assert client.flush(timeout=5)
    first, second = flags_server.events
    assert first["properties"]["$feature/off"] is False
    assert "$active_feature_flags" not in first["properties"]
    assert not any(key.startswith("$feature") for key in second["properties"])


def test_the_facade_passes_flags_through(flags_server: FlagsServer) -> None:
    flags_server.respond_with(FLAGS)
    client = Client(API_KEY, host=flags_server.url)
    try:
        with client.new_context():
            posthog.identify_context("u")
            posthog.capture("e", flags=posthog.evaluate_flags())
        assert client.flush(timeout=5)
    finally:
        client.shutdown(timeout=2)
    [event] = flags_server.events_named("e")
    assert event["properties"]["$active_feature_flags"] == ["alpha", "zeta"]


def test_something_else_passed_as_flags_is_logged_and_the_event_still_sent(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_flags_client()
    uuid = client.capture("e", distinct_id="u", flags={"a": True},  # type: ignore[arg-type]
                          properties={"k": 1})
    assert uuid is not None
    assert client.flush(timeout=5)
    [event] = flags_server.events
    assert event["properties"]["k"] == 1
    assert "capture(flags=...) takes a snapshot" in caplog.text


def test_each_event_gets_its_own_list_of_active_flags(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)

    def tamper(event: dict[str, object]) -> dict[str, object]:
        properties = event["properties"]
        assert isinstance(properties, dict)
        if event["event"] == "first":
            properties["$active_feature_flags"].append("tampered")
        return event

    client = make_flags_client(before_send=tamper)
    snapshot = client.evaluate_flags("u")
    client.capture("first", distinct_id="u", flags=snapshot)
    client.capture("second", distinct_id="u", flags=snapshot)
    assert client.flush(timeout=5)
    [second] = flags_server.events_named("second")
    assert second["properties"]["$active_feature_flags"] == ["alpha", "zeta"]
    assert snapshot.event_properties()["$active_feature_flags"] == ["alpha", "zeta"]


def test_flags_ride_beside_values_that_need_converting(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    snapshot = client.evaluate_flags("u")
    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    client.capture("bought", distinct_id="u", flags=snapshot, properties={"at": when})
    assert client.flush(timeout=5)
    [event] = flags_server.events_named("bought")
    assert event["properties"]["at"] == "2026-01-02T00:00:00+00:00"
    assert event["properties"]["$active_feature_flags"] == ["alpha", "zeta"]
