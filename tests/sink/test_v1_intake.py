"""The sink's capture v1 intake: required headers, bearer key, uuids, encodings, results."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

import pytest
import requests
import zstandard

from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.sink.test_sink import KEY, V1_HEADERS, make_event

V1_PATH = "/i/v1/analytics/events"


def send(sink: LocalSink, body: Any, *, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> requests.Response:
    sent = {"Content-Type": "application/json", **V1_HEADERS, **(headers or {})}
    payload = data if data is not None else json.dumps(body).encode()
    return requests.post(sink.url + V1_PATH, data=payload, headers=sent, timeout=5)


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"created_at": "2024-05-01T12:00:00+00:00", "batch": list(events)}


@pytest.mark.parametrize("header", ["User-Agent", "PostHog-Sdk-Info", "PostHog-Attempt",
                                    "PostHog-Request-Id", "PostHog-Request-Timestamp",
                                    "Content-Type"])
def test_a_missing_required_header_is_400(sink: LocalSink, header: str) -> None:
    response = send(sink, batch(make_event()), headers={header: ""})
    assert response.status_code == 400
    assert response.json()["code"] == "missing_required_headers"
    assert header in response.json()["detail"]
    assert sink.events() == []


def test_without_a_bearer_key_is_401(sink: LocalSink) -> None:
    response = send(sink, batch(make_event()), headers={"Authorization": f"Basic {KEY}"})
    assert response.status_code == 401
    assert sink.events() == []


@pytest.mark.parametrize(("events", "code"), [
    ([], "empty_batch"),
    ([{"event": "e", "distinct_id": "u"}], "missing_event_uuid"),
    ([{"event": "e", "distinct_id": "u", "uuid": "not-a-uuid"}], "invalid_event_uuid"),
])
def test_request_level_refusals(sink: LocalSink, events: list[dict[str, Any]],
                                code: str) -> None:
    response = send(sink, batch(*events))
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert sink.events() == []


def test_a_duplicate_uuid_fails_the_whole_request(sink: LocalSink) -> None:
    first = make_event("a")
    # The same uuid in upper case is the same uuid.
    second = {**make_event("b"), "uuid": first["uuid"].upper()}
    response = send(sink, batch(first, second, make_event("c")))
    assert response.status_code == 400
    assert response.json()["code"] == "duplicate_event_uuid"
    assert sink.events() == []


def test_a_body_without_created_at_is_invalid(sink: LocalSink) -> None:
    response = send(sink, {"batch": [make_event()]})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"


def test_an_unknown_encoding_is_415(sink: LocalSink) -> None:
    response = send(sink, None, data=b"xx", headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_encoding"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", "identity"])
def test_encodings_are_decoded(sink: LocalSink, encoding: str) -> None:
    event = make_event()
    raw = json.dumps(batch(event)).encode()
    compressed = {"gzip": gzip.compress, "deflate": zlib.compress,
                  "zstd": zstandard.ZstdCompressor().compress,
                  "identity": lambda data: data}[encoding](raw)
    response = send(sink, None, data=compressed, headers={"Content-Encoding": encoding})
    assert response.status_code == 200
    assert sink.events() == [event]
    assert sink.requests()[0].events == [event]


def test_everything_is_ok_by_default_without_retry_after(sink: LocalSink) -> None:
    events = [make_event("a"), make_event("b")]
    response = send(sink, batch(*events))
    assert response.json() == {"results": {e["uuid"]: {"result": "ok"} for e in events}}
    assert "Retry-After" not in response.headers


def test_scripted_positional_results(sink: LocalSink) -> None:
    events = [make_event(name) for name in "abcd"]
    sink.script(ScriptedResponse(results=("ok", "drop:billing_limit_exceeded", "retry")))
    response = send(sink, batch(*events))
    assert response.status_code == 200
    assert response.headers["Retry-After"] == "1"
    assert response.json()["results"] == {
        events[0]["uuid"]: {"result": "ok"},
        events[1]["uuid"]: {"result": "drop", "details": "billing_limit_exceeded"},
        events[2]["uuid"]: {"result": "retry"},
        events[3]["uuid"]: {"result": "ok"},
    }
    # Dropped and retryable events are not stored: a resend stores the retried one once.
    assert [e["event"] for e in sink.events()] == ["a", "d"]
    assert send(sink, batch(events[2])).status_code == 200
    assert [e["event"] for e in sink.events()] == ["a", "d", "c"]


def test_scripted_results_from_a_function(sink: LocalSink) -> None:
    events = [make_event("keep"), make_event("drop me")]
    sink.script(ScriptedResponse(results=lambda sent: {
        str(uuid.UUID(e["uuid"])): "drop:invalid_options"
        for e in sent if e["event"] == "drop me"}))
    response = send(sink, batch(*events))
    assert "Retry-After" not in response.headers
    assert response.json()["results"][events[1]["uuid"]] == {
        "result": "drop", "details": "invalid_options"}
    assert [e["event"] for e in sink.events()] == ["keep"]


def test_a_scripted_error_status_still_wins(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(503, retry_after="2"))
    response = send(sink, batch(make_event()))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert sink.events() == []
