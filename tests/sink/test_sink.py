"""The local capture sink, exercised over real loopback HTTP."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_integrations.sink import EventStore, LocalSink, ScriptedResponse

KEY = "phc_test_key_0123456789"
CAPTURE_PATHS = ["/batch/", "/batch", "/i/v0/e/", "/e/", "/e", "/capture/", "/capture", "/i/v0/e"]
REPO_ROOT = Path(__file__).resolve().parents[2]
# What a v1 request must carry besides its body (the sink answers 400 without them).
V1_HEADERS = {
    "Authorization": f"Bearer {KEY}", "User-Agent": "tests/1", "PostHog-Sdk-Info": "tests/1",
    "PostHog-Attempt": "1", "PostHog-Request-Id": "0b3a4d3e-6a1c-4a43-9d36-0f1c8a1f6b11",
    "PostHog-Request-Timestamp": "2024-05-01T12:00:00+00:00",
}
# How long the sink command may take to exit after SIGINT. Its own shutdown takes well under
# 0.1 s; the rest is the interpreter exiting, which took up to 2.7 s with the two cores
# six times oversubscribed. The bound is for a machine far busier than that.
SHUTDOWN_TIMEOUT = 60


def make_event(name: str = "signup", distinct_id: str = "user-1", **props: Any) -> dict[str, Any]:
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": {"$lib": "test", **props},
        "timestamp": "2024-05-01T12:00:00+00:00",
        "uuid": str(uuid.uuid4()),
    }


def post(
    sink: LocalSink,
    path: str,
    payload: Any,
    *,
    encoding: str = "plain",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    """POST ``payload`` as JSON; ``encoding`` is plain, header (gzip) or a ?compression= value."""
    data = json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    url = sink.url + path
    if encoding != "plain":
        data = gzip.compress(data)
        if encoding == "header":
            all_headers["Content-Encoding"] = "gzip"
        else:
            url += f"?compression={encoding}"
    return requests.post(url, data=data, headers=all_headers, timeout=timeout)


@pytest.fixture
def sink() -> Iterator[LocalSink]:
    with LocalSink() as running:
        yield running


# -- endpoints and body shapes ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["plain", "header", "gzip", "gzip-js"])
@pytest.mark.parametrize("path", CAPTURE_PATHS)
def test_capture_endpoints_accept_plain_and_gzip(sink: LocalSink, path: str, encoding: str) -> None:
    event = make_event(plan="pro")
    response = post(sink, path, {"api_key": KEY, "batch": [event]}, encoding=encoding)
    assert response.status_code == 200
    assert response.json() == {"status": 1}
    assert sink.events() == [event]
    [record] = sink.store.records()
    assert (record.endpoint, record.api_key) == (path, KEY)
    assert sink.requests()[0].gzip is (encoding != "plain")


def test_single_event_body(sink: LocalSink) -> None:
    body = {"api_key": KEY, **make_event("pageview")}
    assert post(sink, "/e/", body).status_code == 200
    assert sink.events() == [body]
    assert sink.store.records()[0].api_key == KEY


def test_list_of_events_body(sink: LocalSink) -> None:
    body = [{"api_key": KEY, **make_event("a")}, {"api_key": KEY, **make_event("b")}]
    assert post(sink, "/batch/", body).status_code == 200
    assert [e["event"] for e in sink.events()] == ["a", "b"]
    assert sink.requests()[0].api_key == KEY


@pytest.mark.parametrize(
    "body",
    [
        {"token": KEY, "batch": [make_event()]},
        {"batch": [{**make_event(), "properties": {"token": KEY}}]},
        {"token": KEY, **make_event()},
        {**make_event(), "properties": {"token": KEY}},
    ],
    ids=["root-token", "event-properties-token", "single-root-token", "single-properties-token"],
)
def test_key_may_be_given_as_token(sink: LocalSink, body: dict[str, Any]) -> None:
    assert post(sink, "/batch/", body).status_code == 200
    assert sink.store.records()[0].api_key == KEY


def test_v1_endpoint_uses_bearer_key_and_answers_results(sink: LocalSink) -> None:
    events = [make_event("a"), make_event("b")]
    body = {"created_at": "2024-05-01T12:00:00Z", "batch": events}
    response = post(
        sink,
        "/i/v1/analytics/events",
        body,
        encoding="header",
        headers=V1_HEADERS,
    )
    assert response.status_code == 200
    assert response.json() == {"results": {e["uuid"]: {"result": "ok"} for e in events}}
    assert sink.events() == events
    assert sink.store.records()[0].api_key == KEY

    without_key = {k: v for k, v in V1_HEADERS.items() if k != "Authorization"}
    unauthenticated = post(sink, "/i/v1/analytics/events", body, headers=without_key)
    assert unauthenticated.status_code == 401
    assert sink.store.count() == 2


# -- errors ----------------------------------------------------------------------------


def test_missing_key_is_401_and_nothing_is_stored(sink: LocalSink) -> None:
    response = post(sink, "/batch/", {"batch": [make_event()]})
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"
    assert sink.events() == []
    assert [r.status for r in sink.requests()] == [401]


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        (b"{not json", {}),
        (b"", {}),
        (b'{"api_key": "k", "batch": [', {}),
        (b'{"api_key": "k", "batch": []}', {"Content-Encoding": "gzip"}),  # not gzip
        (gzip.compress(b'{"api_key": "k"')[:-6], {"Content-Encoding": "gzip"}),  # truncated
        (gzip.compress(b"{not json"), {"Content-Encoding": "gzip"}),
        (b'"a string"', {}),
        (b'{"api_key": "k", "batch": [1, 2]}', {}),
        (b'{"api_key": "k", "batch": [{"distinct_id": "no name"}]}', {}),
    ],
    ids=[
        "json",
        "empty",
        "truncated-json",
        "not-gzip",
        "truncated-gzip",
        "gzip-of-bad-json",
        "scalar",
        "non-object-events",
        "event-without-name",
    ],
)
def test_malformed_bodies_are_400(sink: LocalSink, data: bytes, headers: dict[str, str]) -> None:
    response = requests.post(sink.url + "/batch/", data=data, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert sink.store.count() == 0
    assert sink.requests()[0].status == 400


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("POST", "/nope"), ("GET", "/batch/")]
)
def test_anything_else_is_404(sink: LocalSink, method: str, path: str) -> None:
    assert requests.request(method, sink.url + path, timeout=5).status_code == 404
    assert sink.requests() == []


# -- scripted responses ----------------------------------------------------------------


def test_scripted_statuses_are_consumed_in_order_then_200(sink: LocalSink) -> None:
    sink.script(500, ScriptedResponse(503), ScriptedResponse(429, retry_after="7"))
    statuses = [post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}) for _ in range(5)]
    assert [r.status_code for r in statuses] == [500, 503, 429, 200, 200]
    assert statuses[2].headers["Retry-After"] == "7"
    assert "Retry-After" not in statuses[3].headers
    assert [r.status for r in sink.requests()] == [500, 503, 429, 200, 200]
    # Only the two requests answered 2xx stored their events.
    assert sink.store.count() == 2


def test_scripted_body_and_2xx_status(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(202, body=b"accepted"))
    response = post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]})
    assert (response.status_code, response.content) == (202, b"accepted")
    assert sink.store.count() == 1


def test_scripted_2xx_does_not_hide_a_missing_key(sink: LocalSink) -> None:
    sink.script(200)
    assert post(sink, "/batch/", {"batch": [make_event()]}).status_code == 401
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 200


def test_delay_delays_the_answer(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(delay=0.3))
    started = time.monotonic()
    response = post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert sink.store.count() == 1


def test_drop_connection_gives_the_client_a_connection_error(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(drop_connection=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]})
    assert sink.store.count() == 0
    assert [r.status for r in sink.requests()] == [0]
    # The next request is answered normally.
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 200


def test_hang_does_not_block_stop() -> None:
    sink = LocalSink().start()
    sink.script(ScriptedResponse(hang=True))
    errors: list[BaseException] = []

    def client() -> None:
        try:
            post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, timeout=10)
        except requests.exceptions.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while not sink.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.requests(), "the hanging request never arrived"
    started = time.monotonic()
    sink.stop()
    assert time.monotonic() - started < 3  # not the hanging request's 10 s
    thread.join(5)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [requests.exceptions.ConnectionError]
    assert sink.store.count() == 0


# -- recording and waiting -------------------------------------------------------------


def test_recorded_request_fields(sink: LocalSink) -> None:
    events = [make_event("a"), make_event("b"), make_event("c")]
    body = {"api_key": KEY, "batch": events, "historical_migration": False, "sent_at": "now"}
    wire = gzip.compress(json.dumps(body).encode())
    before = time.monotonic()
    response = requests.post(
        sink.url + "/batch/?ver=1",
        data=wire,
        headers={"Content-Encoding": "gzip", "X-Custom-Thing": "Yes", "User-Agent": "ua/1"},
        timeout=5,
    )
    assert response.status_code == 200
    [recorded] = sink.requests()
    assert recorded.path == "/batch/"
    assert recorded.query == "ver=1"
    assert recorded.uuids == [e["uuid"] for e in events]
    assert recorded.events == events
    assert recorded.body == body
    assert recorded.gzip is True
    assert recorded.content_length == len(wire) == len(recorded.raw)
    assert recorded.status == 200
    assert recorded.api_key == KEY
    assert before <= recorded.received_at <= time.monotonic()
    assert recorded.headers["x-custom-thing"] == "Yes"
    assert recorded.headers["user-agent"] == "ua/1"
    assert all(name == name.lower() for name in recorded.headers)
    # requests() hands out a copy.
    sink.requests().clear()
    assert len(sink.requests()) == 1


def test_wait_for_events_returns_once_enough_arrived(sink: LocalSink) -> None:
    def send_later() -> None:
        time.sleep(0.1)
        post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("a"), make_event("b")]})

    thread = threading.Thread(target=send_later)
    thread.start()
    events = sink.wait_for_events(2, timeout=5)
    thread.join()
    assert [e["event"] for e in events] == ["a", "b"]


def test_wait_for_events_times_out_with_assertion_error(sink: LocalSink) -> None:
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("only-one")]})
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"at least 3 event.*but 1 arrived.*only-one"):
        sink.wait_for_events(3, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2


def test_clear_forgets_events_requests_and_script(sink: LocalSink) -> None:
    post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]})
    sink.script(500)
    sink.clear()
    assert (sink.events(), sink.requests(), sink.store.count()) == ([], [], 0)
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 200


def test_concurrent_clients_all_land(sink: LocalSink) -> None:
    def client(n: int) -> None:
        for i in range(10):
            batch = [make_event(f"c{n}", f"u{i}") for _ in range(5)]
            assert post(sink, "/batch/", {"api_key": KEY, "batch": batch}).status_code == 200

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sink.store.count() == 300
    assert len({e["uuid"] for e in sink.events()}) == 300


# -- JSON API ---------------------------------------------------------------------------


def test_api_events_filters_newest_first(sink: LocalSink) -> None:
    batch = [
        make_event("pageview", "alice", **{"$session_id": "s1"}),
        make_event("signup", "alice", **{"$session_id": "s1"}),
        make_event("pageview", "bob", **{"$session_id": "s2"}),
        {**make_event("pageview", "carol"), "properties": {"token": KEY}},
    ]
    post(sink, "/batch/", {"api_key": KEY, "batch": batch})

    def names(query: str) -> list[tuple[str, str]]:
        response = requests.get(f"{sink.url}/api/events{query}", timeout=5)
        assert response.status_code == 200
        return [(e["event"], e["distinct_id"]) for e in response.json()["events"]]

    everything = [
        ("pageview", "carol"),
        ("pageview", "bob"),
        ("signup", "alice"),
        ("pageview", "alice"),
    ]
    assert names("") == everything
    assert names("?event=pageview") == [
        ("pageview", "carol"),
        ("pageview", "bob"),
        ("pageview", "alice"),
    ]
    assert names("?distinct_id=alice") == [("signup", "alice"), ("pageview", "alice")]
    assert names("?session_id=s1&event=signup") == [("signup", "alice")]
    assert names("?limit=2") == everything[:2]
    assert names("?event=missing") == []
    assert KEY not in requests.get(f"{sink.url}/api/events", timeout=5).text
    assert requests.get(f"{sink.url}/api/events?limit=x", timeout=5).status_code == 400


# -- store -----------------------------------------------------------------------------


def test_event_store_file_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "events.sqlite3")
    store = EventStore(path)
    events = [make_event("a", **{"$session_id": "s1"}), make_event("b")]
    store.add(events, api_key=KEY, endpoint="/batch/")
    store.close()

    reopened = EventStore(path)
    try:
        assert reopened.count() == 2
        assert reopened.events() == events
        assert reopened.events(session_id="s1") == events[:1]
        assert reopened.events(newest_first=True, limit=1) == events[1:]
        [first, second] = reopened.records()
        assert (first.api_key, first.endpoint, first.event) == (KEY, "/batch/", events[0])
        assert second.seq > first.seq
        assert second.received_at >= first.received_at
        reopened.add([make_event("c")], api_key="other", endpoint="/e/")
        assert [e["event"] for e in reopened.events(api_key="other")] == ["c"]
        assert reopened.records()[-1].seq > second.seq
        reopened.clear()
        assert (reopened.count(), reopened.events()) == (0, [])
    finally:
        reopened.close()


def test_in_memory_stores_are_private() -> None:
    first, second = EventStore(), EventStore()
    first.add([make_event()], api_key=KEY, endpoint="/batch/")
    assert (first.count(), second.count()) == (1, 0)
    first.close()
    second.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(st.text(), json_values, max_size=5), name=st.text(min_size=1))
def test_events_are_stored_exactly_as_received(props: dict[str, Any], name: str) -> None:
    event = {**make_event(name), "properties": props}
    with LocalSink() as sink:
        assert post(sink, "/batch/", {"api_key": KEY, "batch": [event]}, encoding="header").ok
        assert sink.events() == [event]


# -- echo and CLI ------------------------------------------------------------------------


def test_echo_prints_events_but_never_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalSink(echo=True) as sink:
        post(
            sink,
            "/batch/",
            {"api_key": KEY, "batch": [make_event("batched", **{"$session_id": "s9"})]},
        )
        post(sink, "/e/", {"token": KEY, **make_event("single")})
        post(sink, "/capture/", {**make_event("in-props"), "properties": {"token": KEY}})
        body = {"created_at": "2024-05-01T12:00:00Z", "batch": [make_event("v1")]}
        post(sink, "/i/v1/analytics/events", body, headers=V1_HEADERS)
        sink.wait_for_events(4)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[1:] == ["batched", "distinct_id=user-1", "session=s9", "/batch/"]
    assert [line.split()[1] for line in lines[1:]] == ["single", "in-props", "v1"]
    assert KEY not in out
    assert KEY not in err


# The `sink` command, run with ``python -c SINK_CLI <arguments>``.
SINK_CLI = (
    "import argparse, sys\n"
    "from posthog_integrations.sink import cli\n"
    "parser = argparse.ArgumentParser()\n"
    "cli.add_arguments(parser)\n"
    "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("PostHog sink listening on http://127.0.0.1:"), first
        url = first.split()[-1]
        hints = [proc.stdout.readline() for _ in range(4)]
        assert any(f"POSTHOG_HOST={url}" in line for line in hints)
        event = make_event("from-cli")
        response = requests.post(
            f"{url}/batch/", json={"api_key": KEY, "batch": [event]}, timeout=5
        )
        assert response.status_code == 200
        echoed = proc.stdout.readline()
        assert "from-cli" in echoed
        assert KEY not in echoed
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert KEY not in out + err
    store = EventStore(str(db))
    try:
        assert store.events() == [event]
    finally:
        store.close()


def test_lone_surrogates_and_unicode_are_stored_and_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = (
        b'{"api_key": "k", "batch": [{"event": "caf\\u00e9 \\ud800", "distinct_id": "\\udfff",'
        b' "uuid": "u1", "properties": {"x": "\\ud83d", "emoji": "\\ud83d\\ude00"}}]}'
    )
    with LocalSink(echo=True) as sink:
        response = requests.post(sink.url + "/batch/", data=raw, timeout=5)
        assert response.status_code == 200
        assert sink.events() == [json.loads(raw)["batch"][0]]
    assert "café" in capsys.readouterr().out
