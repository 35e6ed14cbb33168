"""Capture v1 on the wire: options, headers, body, event fields, compression, batch limits."""

from __future__ import annotations

import gzip
import json
import logging
import re
import sys
import uuid
import zlib
from typing import Any

import pytest
import zstandard

from posthog_integrations import VERSION, Client
from posthog_integrations.core.options import ClientOptions, ConfigurationError
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory

UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
V1_PATH = "/i/v1/analytics/events"


def decoded(raw: bytes, encoding: str | None) -> Any:
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    elif encoding == "zstd":
        raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=10 << 20)
    return json.loads(raw)


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "mode"), [("v1", "v1"), ("analytics_v1", "v1"),
                                             ("V1", "v1"), ("legacy", "v0"), ("v0", "v0")])
def test_capture_mode_names(given: str, mode: str) -> None:
    assert ClientOptions.resolve({"capture_mode": given}, environ={}).capture_mode == mode
    from_env = ClientOptions.resolve({}, environ={"POSTHOG_CAPTURE_MODE": given})
    assert from_env.capture_mode == mode


def test_capture_mode_defaults_to_v0() -> None:
    assert ClientOptions.resolve({}, environ={}).capture_mode == "v0"


def test_invalid_capture_mode_is_an_error_given_and_a_warning_from_the_environment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigurationError, match="capture_mode must be one of"):
        ClientOptions.resolve({"capture_mode": "v2"}, environ={})
    options = ClientOptions.resolve({}, environ={"POSTHOG_CAPTURE_MODE": "v2"})
    assert options.capture_mode == "v0"
    warnings = [r for r in caplog.records if "POSTHOG_CAPTURE_MODE" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_capture_compression_follows_gzip_unless_given() -> None:
    assert ClientOptions.resolve({}, environ={}).v1_compression == "gzip"
    assert ClientOptions.resolve({"gzip": False}, environ={}).v1_compression == "none"
    given = ClientOptions.resolve({"capture_compression": "identity"}, environ={})
    assert given.v1_compression == "none"
    env = ClientOptions.resolve({}, environ={"POSTHOG_CAPTURE_COMPRESSION": "deflate"})
    assert env.v1_compression == "deflate"
    with pytest.raises(ConfigurationError, match="capture_compression must be one of"):
        ClientOptions.resolve({"capture_compression": "br"}, environ={})


def test_zstd_without_zstandard(monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"zstandard.*\[zstd\]"):
        ClientOptions.resolve({"capture_compression": "zstd"}, environ={})
    options = ClientOptions.resolve({}, environ={"POSTHOG_CAPTURE_COMPRESSION": "zstd"})
    assert options.v1_compression == "gzip"
    assert "needs the zstandard package" in caplog.text


# -- headers and body ------------------------------------------------------------------------


def test_v1_request_headers_and_body(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1")
    returned = client.capture("signed up", distinct_id="user-1", properties={"plan": "pro"})
    assert client.flush()

    [request] = sink.requests()
    assert request.path == V1_PATH
    assert request.status == 200
    headers = request.headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"posthog-integrations/{VERSION}"
    assert headers["posthog-sdk-info"] == f"posthog-integrations/{VERSION}"
    assert headers["posthog-attempt"] == "1"
    assert str(uuid.UUID(headers["posthog-request-id"])) == headers["posthog-request-id"]
    assert UTC_ISO.match(headers["posthog-request-timestamp"])
    assert headers["content-encoding"] == "gzip"
    body = request.body
    assert set(body) == {"created_at", "batch"}  # no api_key, sent_at, historical_migration
    assert UTC_ISO.match(body["created_at"])
    [event] = body["batch"]
    assert event["uuid"] == returned
    assert event["event"] == "signed up"
    assert event["distinct_id"] == "user-1"
    assert UTC_ISO.match(event["timestamp"])
    assert "options" not in event
    assert event["properties"] == {"plan": "pro", "$geoip_disable": True}
    assert sink.events()[0]["uuid"] == returned


def test_historical_migration_only_when_true(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1", historical_migration=True)
    client.capture("e", distinct_id="u")
    assert client.flush()
    assert sink.requests()[0].body["historical_migration"] is True


def test_separate_flushes_get_separate_request_ids(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(capture_mode="v1")
    for _ in range(2):
        client.capture("e", distinct_id="u")
        assert client.flush()
    first, second = sink.requests()
    assert first.headers["posthog-request-id"] != second.headers["posthog-request-id"]
    assert first.headers["posthog-attempt"] == second.headers["posthog-attempt"] == "1"


# -- event fields ----------------------------------------------------------------------------


def test_event_fields_options_and_relocation(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1")
    client.capture("full", distinct_id=42, timestamp="2025-01-02T08:34:05+05:30", properties={
        "$session_id": "s1", "$window_id": "w1", "$cookieless_mode": "true",
        "$ignore_sent_at": 1, "$process_person_profile": False, "$product_tour_id": "tour_123",
        "custom_number": 42, "looks_like_time": "2025-01-02T08:34:05+05:30",
        "$set": {"plan": "pro"},
    })
    client.capture("uncoercible", distinct_id="u", properties={
        "$cookieless_mode": "maybe", "$product_tour_id": 7, "$ignore_sent_at": " FALSE "})
    client.set(distinct_id="u", properties={"name": "Ada"})
    client.capture("personless")
    assert client.flush()

    by_name = {event["event"]: event for request in sink.requests() for event in request.events}
    full = by_name["full"]
    assert full["distinct_id"] == "42"
    assert full["timestamp"] == "2025-01-02T03:04:05+00:00"
    assert (full["session_id"], full["window_id"]) == ("s1", "w1")
    assert full["options"] == {"cookieless_mode": True, "disable_skew_correction": True,
                               "process_person_profile": False, "product_tour_id": "tour_123"}
    properties = full["properties"]
    assert properties["custom_number"] == 42
    assert properties["looks_like_time"] == "2025-01-02T08:34:05+05:30"
    assert properties["$set"] == {"plan": "pro"}
    for absent in ("$cookieless_mode", "$ignore_sent_at", "$process_person_profile",
                   "$product_tour_id", "$lib", "$lib_version", "distinct_id"):
        assert absent not in properties

    uncoercible = by_name["uncoercible"]
    assert uncoercible["options"] == {"disable_skew_correction": False}
    assert "$cookieless_mode" not in uncoercible["properties"]

    person_update = by_name["$set"]
    assert "$set" not in person_update
    assert person_update["properties"]["$set"] == {"name": "Ada"}

    personless = by_name["personless"]
    assert uuid.UUID(personless["distinct_id"])
    assert personless["options"] == {"process_person_profile": False}


# -- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize(("compression", "encoding"), [
    ("gzip", "gzip"), ("deflate", "deflate"), ("zstd", "zstd"), ("none", None),
    ("identity", None),
])
def test_compressed_bodies_decode(sink: LocalSink, make_client: ClientFactory,
                                  compression: str, encoding: str | None) -> None:
    client = make_client(capture_mode="v1", capture_compression=compression)
    for index in range(50):
        client.capture("page viewed", distinct_id="u", properties={"path": f"/docs/{index}"})
    assert client.flush()
    requests = sink.requests()
    assert all(r.status == 200 for r in requests)
    for request in requests:
        assert request.headers.get("content-encoding") == encoding
        body = decoded(request.raw, encoding)
        assert body == request.body
    if encoding == "deflate":
        assert requests[0].raw[:1] == b"\x78"  # zlib-wrapped, not raw deflate
    paths = sorted(e["properties"]["path"] for e in sink.events())
    assert paths == sorted(f"/docs/{index}" for index in range(50))


def test_gzip_false_sends_plain_json_in_v1(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_mode="v1", gzip=False)
    client.capture("e", distinct_id="u")
    assert client.flush()
    [request] = sink.requests()
    assert "content-encoding" not in request.headers
    assert json.loads(request.raw)["batch"][0]["event"] == "e"


# -- batch limits ----------------------------------------------------------------------------


def test_batches_are_split_by_size_and_oversized_events_dropped(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(capture_mode="v1", max_batch_size=3, flush_at=100)
    for index in range(7):
        client.capture("e", distinct_id="u", properties={"i": index})
    client.capture("huge", distinct_id="u", properties={"blob": "x" * (1000 * 1024)})
    assert client.flush()
    requests = sink.requests()
    assert all(0 < len(r.events) <= 3 for r in requests)
    assert sorted(e["properties"]["i"] for e in sink.events()) == list(range(7))
    assert len({r.headers["posthog-request-id"] for r in requests}) == len(requests)
    assert client.stats().dropped_by_reason["oversize"] == 1
    assert "dropping event 'huge'" in caplog.text


def test_duplicate_uuids_in_a_batch_do_not_fail_the_batch(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(capture_mode="v1")
    same = str(uuid.uuid4())
    client.capture("first", distinct_id="u", uuid=same)
    client.capture("second", distinct_id="u", uuid=same)
    client.capture("other", distinct_id="u")
    assert client.flush()
    assert all(r.status == 200 for r in sink.requests())
    assert [e["event"] for e in sink.events()] == ["first", "other"]
    assert client.stats().dropped_by_reason["invalid"] == 1


def test_v1_mode_from_the_environment(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v1")
    client = Client(api_key=API_KEY, host=sink.url)
    try:
        client.capture("e", distinct_id="u")
        assert client.flush()
    finally:
        client.shutdown(timeout=2)
    assert [r.path for r in sink.requests()] == [V1_PATH]
