"""``$feature_flag_called`` (spec §5): once per distinct id, flag, value and groups, with the
spec's properties, arriving at the capture endpoint through the client's normal pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_integrations.feature_flags.called import CalledTracker
from posthog_integrations.testing import capture_events
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer

V2 = {
    "flags": {
        "exp": {"key": "exp", "enabled": True, "variant": "test",
                "reason": {"code": "condition_match", "description": "Matched condition set 1"},
                "metadata": {"id": 7, "version": 3, "payload": '{"p": 1}',
                             "has_experiment": True}},
        "plain": {"key": "plain", "enabled": True, "metadata": {"id": 0, "version": 0}},
        "failed": {"key": "failed", "enabled": True, "failed": True},
    },
    "requestId": "req-9", "evaluatedAt": 1640995200000,
}


def called(server: FlagsServer) -> list[dict[str, Any]]:
    return server.events_named("$feature_flag_called")


def test_a_single_flag_getter_sends_one_event_with_the_spec_properties(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(V2)
    client = make_flags_client()
    assert client.get_feature_flag("exp", "u") == "test"
    assert client.flush(timeout=5)

    [event] = called(flags_server)
    assert event["distinct_id"] == "u"
    properties = event["properties"]
    assert {key: properties[key] for key in properties if key.startswith(("$feature", "locally"))
            } == {
        "$feature_flag": "exp", "$feature_flag_response": "test", "$feature/exp": "test",
        "locally_evaluated": False, "$feature_flag_payload": {"p": 1},
        "$feature_flag_request_id": "req-9", "$feature_flag_evaluated_at": 1640995200000,
        "$feature_flag_reason": "Matched condition set 1", "$feature_flag_version": 3,
        "$feature_flag_id": 7, "$feature_flag_has_experiment": True,
    }


def test_falsy_metadata_is_left_out_and_groups_ride_along(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(V2)
    client = make_flags_client()
    client.feature_enabled("plain", "u", groups={"company": "acme"})
    assert client.flush(timeout=5)
    [event] = called(flags_server)
    properties = event["properties"]
    assert "$feature_flag_id" not in properties
    assert "$feature_flag_version" not in properties
    assert "$feature_flag_error" not in properties
    assert properties["$groups"] == {"company": "acme"}


def test_repeated_calls_are_sent_once_per_distinct_id_value_and_groups(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"featureFlags": {"f": True}})
    client = make_flags_client()
    for _ in range(3):
        client.get_feature_flag("f", "u")
        client.evaluate_flags("u").is_enabled("f")
    client.get_feature_flag("f", "other")
    client.get_feature_flag("f", "u", groups={"company": "acme", "team": "t"})
    client.get_feature_flag("f", "u", groups={"team": "t", "company": "acme"})  # same groups
    flags_server.respond_with({"featureFlags": {"f": "variant"}})
    client.get_feature_flag("f", "u")  # a new value
    assert client.flush(timeout=5)

    seen = [(e["distinct_id"], e["properties"]["$feature_flag_response"],
             e["properties"].get("$groups")) for e in called(flags_server)]
    assert seen == [("u", True, None), ("other", True, None),
                    ("u", True, {"company": "acme", "team": "t"}), ("u", "variant", None)]


def test_payload_reads_and_bulk_reads_send_nothing(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(V2)
    client = make_flags_client()
    client.get_feature_flag_payload("exp", "u")
    client.get_all_flags("u")
    client.evaluate_flags("u").get_flag_payload("exp")
    client.get_feature_flag("exp", "u", send_feature_flag_events=False)
    client.capture("marker", distinct_id="u")
    assert client.flush(timeout=5)
    assert [event["event"] for event in flags_server.events] == ["marker"]


@pytest.mark.parametrize(("answer", "key", "error"), [
    ({"featureFlags": {}}, "f", "flag_missing"),
    ({"featureFlags": {}, "errorsWhileComputingFlags": True}, "f",
     "errors_while_computing_flags,flag_missing"),
    (V2, "failed", "evaluation_failed"),
    ({"featureFlags": {"f": True}, "quotaLimited": ["feature_flags"]}, "f", "quota_limited"),
    (503, "f", "api_error_503"),
])
def test_failures_are_reported_in_feature_flag_error(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, answer: Any, key: str,
    error: str,
) -> None:
    flags_server.script(answer)
    client = make_flags_client(flag_defaults={key: "dv"})
    assert client.get_feature_flag(key, "u") == "dv"
    assert client.flush(timeout=5)
    [event] = called(flags_server)
    assert event["properties"]["$feature_flag_error"] == error
    assert event["properties"]["$feature_flag_response"] is None


def test_only_evaluate_locally_reads_report_flag_missing(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    assert client.evaluate_flags("u", only_evaluate_locally=True).get_flag("f") is None
    assert client.flush(timeout=5)
    [event] = called(flags_server)
    assert event["properties"]["$feature_flag_error"] == "flag_missing"
    assert flags_server.flags_requests == []


def test_the_record_is_cleared_on_shutdown(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"featureFlags": {"f": True}})
    client = make_flags_client()
    client.get_feature_flag("f", "u")
    assert len(client._flags._tracker) == 1
    client.shutdown(timeout=5)
    assert len(client._flags._tracker) == 0
    assert len(called(flags_server)) == 1


def test_the_events_also_show_in_capture_events(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"featureFlags": {"f": "v"}})
    client = make_flags_client()
    with capture_events() as events:
        client.get_feature_flag("f", "u")
        client.get_feature_flag("f", "u")
    event = events.one("$feature_flag_called")
    assert event["properties"]["$feature_flag_response"] == "v"


def test_the_tracker_is_bounded_and_evicts_the_oldest_distinct_id() -> None:
    tracker = CalledTracker(max_distinct_ids=3)
    for person in ("a", "b", "c"):
        assert tracker.first_time(person, "f", True, {})
    assert not tracker.first_time("a", "f", True, {})
    assert tracker.first_time("d", "f", True, {})  # evicts "a", the oldest
    assert len(tracker) == 3
    assert not tracker.first_time("b", "f", True, {})  # kept
    assert tracker.first_time("a", "f", True, {})  # forgotten, so sent again


def test_the_default_bound_is_fifty_thousand_distinct_ids() -> None:
    tracker = CalledTracker()
    for number in range(50_001):
        tracker.first_time(str(number), "f", True, {})
    assert len(tracker) == 50_000
