"""What goes on the wire: body, headers and the shape of every event type."""

from __future__ import annotations

import datetime
import json
import re
import uuid

import pytest

from posthog_integrations import VERSION
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory

UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def test_batch_body_and_headers(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    returned = client.capture("signed up", distinct_id="user-1", properties={"plan": "pro"})
    assert client.flush()

    [request] = sink.requests()
    assert request.path == "/batch/"
    assert request.gzip
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"posthog-integrations/{VERSION}"
    assert "authorization" not in request.headers
    assert request.body["api_key"] == API_KEY
    assert request.body["historical_migration"] is False
    assert UTC_ISO.match(request.body["sent_at"])
    [event] = request.events
    assert event["uuid"] == returned
    assert event["event"] == "signed up"
    assert event["distinct_id"] == "user-1"
    assert UTC_ISO.match(event["timestamp"])
    assert event["properties"] == {
        "plan": "pro", "$lib": "posthog-integrations", "$lib_version": VERSION,
        "$geoip_disable": True,
    }


def test_event_uuid_is_version_7_and_unique(make_client: ClientFactory) -> None:
    client = make_client(send=False)
    ids = [client.capture("e", distinct_id="u") for _ in range(2000)]
    parsed = [uuid.UUID(str(value)) for value in ids]
    assert {item.version for item in parsed} == {7}
    assert {item.variant for item in parsed} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)


def test_gzip_can_be_turned_off(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(gzip=False)
    client.capture("e", distinct_id="u")
    client.flush()
    [request] = sink.requests()
    assert not request.gzip
    assert "content-encoding" not in request.headers


def test_gzip_body_is_really_compressed(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    for index in range(200):
        client.capture("page viewed", distinct_id="u", properties={"path": f"/docs/{index}"})
    client.flush()
    requests = sink.requests()
    # In total: a batch of a single event, sent when the sender woke early, compresses little.
    uncompressed = sum(len(json.dumps(r.body, separators=(",", ":"))) for r in requests)
    assert sum(r.content_length for r in requests) < uncompressed / 3
    assert all(r.gzip for r in requests)
    assert len(sink.events()) == 200


def test_personless_event_gets_a_generated_id(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("viewed pricing")
    client.capture("kept profile", properties={"$process_person_profile": True})
    client.flush()
    first, second = sink.events()
    assert uuid.UUID(first["distinct_id"]).version == 7
    assert first["properties"]["$process_person_profile"] is False
    assert second["properties"]["$process_person_profile"] is True


def test_non_string_distinct_id_is_stringified(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("e", distinct_id=42)
    client.flush()
    assert sink.events()[0]["distinct_id"] == "42"


def test_precedence_of_super_properties_and_call(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(super_properties={"env": "prod", "team": "core"})
    client.capture("e", distinct_id="u", properties={"env": "staging"}, groups={"company": "acme"})
    client.flush()
    properties = sink.events()[0]["properties"]
    assert properties["env"] == "staging"
    assert properties["team"] == "core"
    assert properties["$groups"] == {"company": "acme"}


def test_geoip_can_be_enabled_per_call(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("with geoip", distinct_id="u", disable_geoip=False)
    client.flush()
    assert "$geoip_disable" not in sink.events()[0]["properties"]


def test_timestamps_are_sent_as_utc(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    plus_five_thirty = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    client.capture("aware", distinct_id="u",
                   timestamp=datetime.datetime(2025, 1, 2, 8, 34, 5, 120000, plus_five_thirty))
    client.capture("naive", distinct_id="u", timestamp=datetime.datetime(2025, 1, 2, 3, 4, 5))
    client.capture("string", distinct_id="u", timestamp="2025-01-02T08:34:05+05:30")
    client.capture("zulu", distinct_id="u", timestamp="2025-01-02T03:04:05Z")
    client.flush()
    stamps = {event["event"]: event["timestamp"] for event in sink.events()}
    assert stamps == {
        "aware": "2025-01-02T03:04:05.120000+00:00",
        "naive": "2025-01-02T03:04:05+00:00",
        "string": "2025-01-02T03:04:05+00:00",
        "zulu": "2025-01-02T03:04:05+00:00",
    }


def test_invalid_timestamp_falls_back_to_now(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    before = datetime.datetime.now(datetime.timezone.utc)
    client.capture("e", distinct_id="u", timestamp="2025-01-02")
    client.flush()
    sent = datetime.datetime.fromisoformat(sink.events()[0]["timestamp"])
    assert sent >= before - datetime.timedelta(seconds=1)
    assert "invalid timestamp '2025-01-02'" in caplog.text


def test_caller_uuid_is_kept(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    mine = uuid.uuid4()
    assert client.capture("e", distinct_id="u", uuid=mine) == str(mine)
    client.capture("e", distinct_id="u", uuid="not-a-uuid")
    client.flush()
    first, second = sink.events()
    assert first["uuid"] == str(mine)
    assert uuid.UUID(second["uuid"]).version == 7


def test_set_and_set_once(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.set(distinct_id="user-1", properties={"plan": "pro"})
    client.set_once(distinct_id="user-1", properties={"first_seen": "2025-01-01"})
    assert client.set(properties={"plan": "pro"}) is None  # personless: a no-op
    assert client.set(distinct_id="user-1", properties={}) is None
    client.flush()
    set_event, once_event = sink.events()
    assert set_event["event"] == "$set"
    assert set_event["$set"] == {"plan": "pro"}
    assert once_event["event"] == "$set_once"
    assert once_event["$set_once"] == {"first_seen": "2025-01-01"}
    assert set_event["properties"]["$lib"] == "posthog-integrations"


def test_alias(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.alias("anon-1", "user-1")
    assert client.alias("", "user-1") is None
    client.flush()
    [event] = sink.events()
    assert event["event"] == "$create_alias"
    assert event["distinct_id"] == "anon-1"
    assert event["properties"]["alias"] == "user-1"
    assert event["properties"]["distinct_id"] == "anon-1"


def test_group_identify(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.group_identify("company", "acme", {"name": "Acme"})
    client.group_identify("company", 7, distinct_id="user-1")
    assert client.group_identify("", "acme") is None
    client.flush()
    first, second = sink.events()
    assert first["event"] == "$groupidentify"
    assert first["distinct_id"] == "$company_acme"
    assert first["properties"]["$group_type"] == "company"
    assert first["properties"]["$group_key"] == "acme"
    assert first["properties"]["$group_set"] == {"name": "Acme"}
    assert "$process_person_profile" not in first["properties"]
    assert second["distinct_id"] == "user-1"
    assert second["properties"]["$group_set"] == {}


def test_historical_migration_flag(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(historical_migration=True)
    client.capture("imported", distinct_id="u")
    client.flush()
    assert sink.requests()[0].body["historical_migration"] is True


def test_invalid_event_name_is_rejected_not_raised(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.capture("") is None
    assert client.capture(None) is None  # type: ignore[arg-type]
    assert client.stats().dropped_by_reason["invalid"] == 2
