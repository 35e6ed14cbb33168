"""What the sink refuses, and the bounds it keeps, over real loopback HTTP."""

from __future__ import annotations

import gzip
import json
import socket
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from posthog_integrations.sink import EventStore, LocalSink
from posthog_integrations.sink.body import MAX_BODY_BYTES, MAX_DECODED_BYTES
from posthog_integrations.sink.guard import host_allowed
from posthog_integrations.sink.query import MAX_API_LIMIT
from posthog_integrations.sink.store import MAX_MEMORY_EVENTS
from tests.sink.test_sink import KEY, make_event, post

# -- terminal output ------------------------------------------------------------------------


def test_echo_escapes_control_bidi_and_format_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile = [
        make_event("\x1b[2J\x1b[31mred\x1b[0m", "user\r\nfake line"),
        make_event("bell\x07 csi\x9b31m del\x7f", "nul\x00"),
        make_event("admin\u202egnp.exe", "zero\u200bwidth\ufeff", **{"$session_id": "s\u2028x"}),
        make_event("tag\U000e0041", "ok"),
    ]
    with LocalSink(echo=True) as sink:
        assert post(sink, "/batch/", {"api_key": KEY, "batch": hostile}).ok
    out = capsys.readouterr().out
    lines = out.split("\n")
    assert lines[-1] == ""
    assert len(lines) == 5  # one line per event: no injected line breaks
    for line in lines:
        assert all(ch.isprintable() for ch in line), repr(line)
    assert "\\x1b[31mred\\x1b[0m" in lines[0]
    assert "distinct_id=user\\r\\nfake line" in lines[0]
    assert "bell\\x07 csi\\x9b31m del\\x7f" in lines[1]
    assert "admin\\u202egnp.exe" in lines[2]
    assert "zero\\u200bwidth\\ufeff" in lines[2]
    assert "session=s\\u2028x" in lines[2]
    assert "tag\\U000e0041" in lines[3]


def test_echo_shortens_very_long_values(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalSink(echo=True) as sink:
        assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("n" * 50_000)]}).ok
    [line] = capsys.readouterr().out.splitlines()
    assert len(line) < 500
    assert "nnn…" in line


# -- body size ------------------------------------------------------------------------------


def _bomb(decompressed: int) -> bytes:
    """A small gzip body that inflates to ``decompressed`` bytes of JSON whitespace."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decompressed >> 20)]
    body = json.dumps({"api_key": KEY, "batch": [make_event()]}).encode()
    parts.append(compressor.compress(body))
    parts.append(compressor.flush())
    return b"".join(parts)


def test_gzip_bomb_is_413_without_inflating_it(sink: LocalSink) -> None:
    bomb = _bomb(256 << 20)
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        response = requests.post(
            sink.url + "/batch/", data=bomb, headers={"Content-Encoding": "gzip"}, timeout=30
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert f"{MAX_DECODED_BYTES}" in response.json()["detail"]
    # Inflating it whole took over 256 MiB; the limit stops at about MAX_DECODED_BYTES.
    assert peak < 4 * MAX_DECODED_BYTES
    assert sink.store.count() == 0
    assert sink.stats()["refused_too_large"] == 1
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 200


def test_gzip_bomb_in_many_members_is_413(sink: LocalSink) -> None:
    member = gzip.compress(b" " * (1 << 20))
    body = member * ((MAX_DECODED_BYTES >> 20) + 1) + gzip.compress(b"{}")
    response = requests.post(
        sink.url + "/batch/", data=body, headers={"Content-Encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413
    assert sink.store.count() == 0


def _padded_body(size: int) -> bytes:
    """A valid one-event batch of exactly ``size`` bytes."""
    head = json.dumps({"api_key": KEY, "batch": [{"event": "big", "properties": {"pad": ""}}]})
    pad = size - len(head)
    return head.replace('"pad": ""', '"pad": "' + "x" * pad + '"').encode()


def test_bodies_up_to_the_limit_are_accepted_and_beyond_are_413(sink: LocalSink) -> None:
    at_limit = _padded_body(MAX_BODY_BYTES)
    assert len(at_limit) == MAX_BODY_BYTES
    assert requests.post(sink.url + "/batch/", data=at_limit, timeout=30).status_code == 200
    compressed = gzip.compress(at_limit)
    gzipped = requests.post(
        sink.url + "/batch/", data=compressed, headers={"Content-Encoding": "gzip"}, timeout=30
    )
    assert gzipped.status_code == 200
    assert sink.store.count() == 2

    over = _padded_body(MAX_BODY_BYTES + 1)
    response = requests.post(sink.url + "/batch/", data=over, timeout=30)
    assert response.status_code == 413
    assert f"{MAX_BODY_BYTES}" in response.json()["detail"]
    over_inflated = requests.post(
        sink.url + "/batch/",
        data=gzip.compress(over),
        headers={"Content-Encoding": "gzip"},
        timeout=30,
    )
    assert over_inflated.status_code == 413
    assert sink.store.count() == 2


def test_declared_length_over_the_limit_is_refused_before_reading(sink: LocalSink) -> None:
    address = urlsplit(sink.url)
    assert address.hostname is not None
    assert address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(
            b"POST /batch/ HTTP/1.1\r\nHost: " + address.netloc.encode()
            + b"\r\nContent-Length: 1000000000000\r\n\r\n{"
        )
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert sink.store.count() == 0


def test_chunked_body_over_the_limit_is_413(sink: LocalSink) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = requests.post(sink.url + "/batch/", data=chunks(), timeout=30)
    assert response.status_code == 413
    assert sink.store.count() == 0


# -- memory -----------------------------------------------------------------------------------


def test_in_memory_store_keeps_the_newest_and_counts_the_dropped() -> None:
    assert EventStore().max_events == MAX_MEMORY_EVENTS
    with LocalSink(max_events=3) as sink:
        for name in "abcde":
            assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event(name)]}).ok
        assert [e["event"] for e in sink.events()] == ["c", "d", "e"]
        assert sink.store.count() == 3
        assert sink.store.dropped() == 2
        assert sink.stats()["events_dropped"] == 2
        answer = requests.get(sink.url + "/api/events", timeout=5).json()
        assert [e["event"] for e in answer["events"]] == ["e", "d", "c"]
        assert answer["dropped"] == 2
        big = [make_event(f"x{i}") for i in range(5)]
        assert post(sink, "/batch/", {"api_key": KEY, "batch": big}).ok
        assert [e["event"] for e in sink.events()] == ["x2", "x3", "x4"]
        assert sink.store.dropped() == 7
        sink.clear()
        assert (sink.store.count(), sink.store.dropped()) == (0, 0)


def test_a_file_store_keeps_everything_unless_capped(tmp_path: Any) -> None:
    unbounded = EventStore(str(tmp_path / "all.sqlite3"))
    capped = EventStore(str(tmp_path / "capped.sqlite3"), max_events=2)
    try:
        assert unbounded.max_events is None
        for store in (unbounded, capped):
            store.add([make_event(n) for n in "abcd"], api_key=KEY, endpoint="/batch/")
        assert (unbounded.count(), unbounded.dropped()) == (4, 0)
        assert [e["event"] for e in capped.events()] == ["c", "d"]
        assert capped.dropped() == 2
    finally:
        unbounded.close()
        capped.close()
    with pytest.raises(ValueError, match="max_events"):
        EventStore(max_events=0)


def test_recorded_requests_are_bounded_by_count_and_bytes() -> None:
    with LocalSink(max_recorded_requests=3, max_recorded_bytes=10_000) as sink:
        for name in "abcd":
            assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event(name)]}).ok
        assert [r.events[0]["event"] for r in sink.requests()] == ["b", "c", "d"]
        assert sink.stats()["requests_forgotten"] == 1
        big = [make_event("big", pad="x" * 4_000)]
        for _ in range(3):
            assert post(sink, "/batch/", {"api_key": KEY, "batch": big}).ok
        recorded = sink.requests()
        assert sum(len(r.raw) for r in recorded) <= 10_000
        assert len(recorded) == 2
        assert sink.stats()["requests_forgotten"] == 5
        assert sink.store.count() == 7  # forgetting a request keeps its events


# -- Host and Origin -------------------------------------------------------------------------


def _port(sink: LocalSink) -> int:
    port = urlsplit(sink.url).port
    assert port is not None
    return port


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
def test_loopback_host_names_are_accepted(sink: LocalSink, name: str) -> None:
    host = {"Host": f"{name}:{_port(sink)}"}
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, headers=host).ok
    assert requests.get(sink.url + "/api/events", headers=host, timeout=5).status_code == 200
    assert requests.get(sink.url + "/", headers=host, timeout=5).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost", "127.0.0.1.nip.io:{port}",
     "localhost.:{port}", "127.0.0.1:{port}@evil.example", ""],
)
def test_other_host_headers_are_421_everywhere(sink: LocalSink, host: str) -> None:
    headers = {"Host": host.format(port=_port(sink))}
    capture = post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, headers=headers)
    assert capture.status_code == 421
    assert capture.json()["code"] == "host_not_allowed"
    for path in ("/api/events", "/", "/nope"):
        assert requests.get(sink.url + path, headers=headers, timeout=5).status_code == 421
    assert sink.store.count() == 0
    assert sink.requests() == []
    assert sink.stats()["refused_host"] == 4


def test_host_allowed_for_other_bindings() -> None:
    assert host_allowed("192.168.1.5:8010", "192.168.1.5", 8010)
    assert host_allowed("localhost:8010", "192.168.1.5", 8010)
    assert not host_allowed("evil.example:8010", "192.168.1.5", 8010)
    assert not host_allowed("192.168.1.5:8011", "192.168.1.5", 8010)
    assert host_allowed("devbox:8010", "devbox", 8010)
    assert host_allowed("[fe80::1]:8010", "fe80::1", 8010)
    # All interfaces: any address literal or this machine's name, never another name.
    assert host_allowed("10.0.0.7:8010", "0.0.0.0", 8010)
    assert host_allowed("[2001:db8::1]:8010", "::", 8010)
    assert host_allowed(f"{socket.gethostname()}:8010", "0.0.0.0", 8010)
    assert not host_allowed("evil.example:8010", "0.0.0.0", 8010)
    assert not host_allowed("10.0.0.7:9999", "", 8010)
    # Port 80 may be left out, as browsers do.
    assert host_allowed("localhost", "127.0.0.1", 80)
    assert not host_allowed("localhost:80:80", "127.0.0.1", 80)
    malformed = ("localhost:", "[::1", "[]:80", ":80", "localhost:+80", "localhost:" + "8" * 5000)
    for header in malformed:
        assert not host_allowed(header, "127.0.0.1", 80)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000"},
        {"Origin": "https://127.0.0.1:{port}"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_browser_posts_are_403(sink: LocalSink, headers: dict[str, str]) -> None:
    headers = {k: v.format(port=_port(sink)) for k, v in headers.items()}
    response = post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "cross_site_request"
    assert sink.store.count() == 0
    assert sink.requests() == []
    assert sink.stats()["refused_cross_site"] == 1


def test_cross_site_reads_are_403(sink: LocalSink) -> None:
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert requests.get(sink.url + "/api/events", headers=cross, timeout=5).status_code == 403


def test_same_origin_browser_requests_are_accepted(sink: LocalSink) -> None:
    own = {"Origin": sink.url, "Sec-Fetch-Site": "same-origin"}
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, headers=own).ok
    localhost = {"Origin": f"http://localhost:{_port(sink)}", "Host": f"localhost:{_port(sink)}"}
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}, headers=localhost).ok
    read = requests.get(sink.url + "/api/events", headers=own, timeout=5)
    assert read.status_code == 200
    assert len(read.json()["events"]) == 2
    direct = {"Sec-Fetch-Site": "none"}  # typed into the address bar
    assert requests.get(sink.url + "/", headers=direct, timeout=5).status_code == 200


# -- query parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=1e20", "invalid_limit"),
        ("limit=100000000000000000000", "invalid_limit"),
        (f"limit={MAX_API_LIMIT + 1}", "invalid_limit"),
        ("limit=1.5", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("limit=", "invalid_limit"),
        ("limit=%20 7", "invalid_limit"),
        ("limit=1_0", "invalid_limit"),
        ("limit=%D9%A1", "invalid_limit"),  # an Arabic-Indic digit one
        ("limit=" + "9" * 5000, "invalid_limit"),  # more digits than int() converts
        ("limit=000000000000000000000001", "invalid_limit"),
        ("after=-5", "invalid_after"),
        ("after=9223372036854775808", "invalid_after"),
        ("after=0x10", "invalid_after"),
        ("limit=1&limit=2", "invalid_limit"),
        ("event=a&event=b", "invalid_event"),
        ("distinct_id=" + "x" * 5000, "invalid_distinct_id"),
        ("limits=5", "unknown_parameter"),
    ],
)
def test_bad_query_parameters_are_400(sink: LocalSink, query: str, code: str) -> None:
    response = requests.get(f"{sink.url}/api/events?{query}", timeout=5)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] == code
    assert answer["detail"]


@pytest.mark.parametrize(
    "query", ["limit=0", f"limit={MAX_API_LIMIT}", "after=9223372036854775807", "after=0"]
)
def test_edge_query_parameters_are_accepted(sink: LocalSink, query: str) -> None:
    assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).ok
    response = requests.get(f"{sink.url}/api/events?{query}", timeout=5)
    assert response.status_code == 200, response.text
