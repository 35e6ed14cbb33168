"""What goes to ``/flags``: the path, the query, the body fields and the headers (spec §2)."""

from __future__ import annotations

import posthog_integrations as posthog
from tests.conftest import API_KEY
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer


def test_a_snapshot_posts_the_v2_request_with_every_body_field(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    client.evaluate_flags("user-1")

    [request] = flags_server.flags_requests
    assert request.path == "/flags/"
    assert request.query == {"v": ["2"]}
    assert "authorization" not in request.headers
    assert "content-encoding" not in request.headers  # never gzipped
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("posthog-integrations/")
    assert request.body == {
        "token": API_KEY, "distinct_id": "user-1", "groups": {}, "group_properties": {},
        "person_properties": {}, "geoip_disable": True, "device_id": None,
    }


def test_the_caller_arguments_are_passed_through(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    client.evaluate_flags(
        "user-1", groups={"company": "acme"},
        group_properties={"company": {"plan": "enterprise"}},
        person_properties={"$device_id": "device_abc_123"}, disable_geoip=False,
        flag_keys=["a", "b"],
    )

    body = flags_server.flags_requests[0].body
    assert body["groups"] == {"company": "acme"}
    assert body["group_properties"] == {"company": {"plan": "enterprise"}}
    assert body["person_properties"] == {"$device_id": "device_abc_123"}
    assert body["geoip_disable"] is False
    assert body["flag_keys_to_evaluate"] == ["a", "b"]


def test_geoip_follows_the_client_option_unless_the_call_says(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client(disable_geoip=False)
    client.evaluate_flags("u")
    client.evaluate_flags("u", disable_geoip=True)
    assert [r.body["geoip_disable"] for r in flags_server.flags_requests] == [False, True]


def test_single_flag_getters_ask_for_their_one_flag(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    client.get_feature_flag("my-flag", "u")
    client.feature_enabled("my-flag", distinct_id="u")
    client.get_feature_flag_payload("my-flag", "u")
    client.get_all_flags("u")

    keys = [request.body.get("flag_keys_to_evaluate") for request in flags_server.flags_requests]
    assert keys == [["my-flag"], ["my-flag"], ["my-flag"], None]


def test_each_getter_call_evaluates_afresh(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script({"featureFlags": {"f": "a"}}, {"featureFlags": {"f": "b"}})
    client = make_flags_client()
    assert [client.get_feature_flag("f", "u"), client.get_feature_flag("f", "u")] == ["a", "b"]
    assert len(flags_server.flags_requests) == 2


def test_the_distinct_id_falls_back_to_the_context(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    with posthog.new_context():
        posthog.identify_context("from-context")
        client.get_feature_flag("f")
        client.evaluate_flags()
        client.evaluate_flags("explicit")
    assert [r.body["distinct_id"] for r in flags_server.flags_requests] == [
        "from-context", "from-context", "explicit"]


def test_no_request_is_made_before_a_flag_is_asked_for(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    client.capture("e", distinct_id="u")
    assert client.flush(timeout=5)
    assert flags_server.flags_requests == []
    assert [event["event"] for event in flags_server.events] == ["e"]
