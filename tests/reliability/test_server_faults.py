"""Server faults over real loopback HTTP: every event arrives once and ``capture()`` never waits.

Each scenario captures 500 events from five threads while the local capture endpoint
(:class:`LocalSink`, or a small fault-injecting proxy in front of it) misbehaves, then checks:

* the captures all finished while the server was still failing, and none of them waited on the
  network: a profile hook in each capturing thread sees no socket, HTTP, sleep or wait call
  inside ``capture()`` (a count of what the code does, not a clock on a loaded machine);
* every event that could be retried reached the endpoint, with its original uuid, and no event
  was lost; where the server processed a request whose answer never reached the client, the
  resent events are stored twice with the same uuid (at-least-once: PostHog dedupes by uuid),
  and the test counts exactly those duplicates;
* ``client.stats()`` adds up: accepted == sent == captured, nothing dropped, and ``retried``
  equals the number of resends the endpoint saw (requests carrying a batch it had seen before).

Every scenario runs in both capture modes (``capture_mode`` is "v0", ``POST /batch/``, or
"v1", ``POST /i/v1/analytics/events``): the requests went to that mode's endpoint, and in v1 a
resend is the next attempt of the same request (same ``PostHog-Request-Id``, attempt + 1).

Narrower single-event checks of the same mechanisms live in tests/core/test_delivery.py.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink, RecordedRequest, ScriptedResponse
from tests.blocking import WaitRecorder
from tests.conftest import API_KEY, ClientFactory
from tests.reliability.conftest import assert_same_attempt_continued, assert_sent_in_mode

THREADS = 5
PER_THREAD = 100
CAPTURED = THREADS * PER_THREAD
# A short sleep between captures, like a request handler doing other work, so that the captures
# spread over the time the server fails.
PAUSE = 0.001
# Small batches, so that several requests (and several faults) are needed for one run.
FAST = {"flush_at": 50, "flush_interval": 0.05, "max_batch_size": 100}


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class CaptureRun:
    """What a burst of captures returned, how long each call took (reported, not asserted) and
    which network or waiting calls the capturing threads made inside ``capture()``."""

    uuids: list[str | None] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    waits: Counter[str] = field(default_factory=Counter)
    finished: float = 0.0  # time.monotonic(), comparable with RecordedRequest.received_at

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> str:
        percentiles = ", ".join(f"p{round(q * 100)} {self.percentile(q) * 1e3:.3f} ms"
                                for q in (0.5, 0.95, 0.99))
        return f"capture() {percentiles}, max {max(self.durations) * 1e3:.3f} ms"


def capture_from_threads(client: Client) -> CaptureRun:
    """Capture ``CAPTURED`` events from ``THREADS`` threads started together, timing each call."""
    run = CaptureRun()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def produce(worker: int) -> None:
        uuids: list[str | None] = []
        durations: list[float] = []
        recorder = WaitRecorder()
        start.wait()
        for index in range(PER_THREAD):
            began = time.perf_counter()
            with recorder.watching():
                uuid = client.capture("fault drill", distinct_id=f"user-{worker}",
                                      properties={"worker": worker, "index": index})
            durations.append(time.perf_counter() - began)
            uuids.append(uuid)
            time.sleep(PAUSE)
        with lock:
            run.uuids.extend(uuids)
            run.durations.extend(durations)
            run.waits.update(recorder.calls)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.finished = time.monotonic()
    return run


def assert_capture_never_waited(run: CaptureRun, recovered_at: float) -> None:
    """Every call was made while the server failed, and none of them waited on it."""
    assert len(run.uuids) == CAPTURED
    assert None not in run.uuids
    assert run.finished < recovered_at, "the captures did not overlap the fault"
    assert run.waits == {}, f"capture() waited: {dict(run.waits)}; {run.summary()}"


def first_success(requests: list[RecordedRequest]) -> float:
    """When the endpoint first answered 2xx (infinity when it never did)."""
    return next((r.received_at for r in requests if 200 <= r.status < 300), float("inf"))


def assert_every_event_stored(sink: LocalSink, run: CaptureRun) -> Counter[str]:
    """Each captured uuid is stored, nothing else is; returns how often each uuid was stored."""
    stored = Counter(event["uuid"] for event in sink.events())
    assert set(stored) == set(run.uuids)
    assert len(stored) == CAPTURED
    return stored


def assert_failed_requests_resent_unchanged(requests: list[RecordedRequest], mode: str) -> None:
    """The sender is sequential: the request after a failed one resends its events as they were,
    to the same endpoint (in v1: as the next attempt of the same request)."""
    assert_sent_in_mode(requests, mode)
    for failed, retry in zip(requests, requests[1:]):
        if not 200 <= failed.status < 300:
            assert retry.uuids == failed.uuids
            assert ([e["timestamp"] for e in retry.events]
                    == [e["timestamp"] for e in failed.events])
            assert_same_attempt_continued(failed, retry, mode)


def resends_seen(requests: list[RecordedRequest]) -> int:
    """Requests that carried a batch the endpoint had already received (uuids are unique)."""
    batches = Counter(tuple(request.uuids) for request in requests)
    return sum(count - 1 for count in batches.values())


def assert_stats_add_up(client: Client, requests: list[RecordedRequest], resends: int) -> None:
    """The endpoint saw ``resends`` (what the scenario causes), and ``retried`` says as much."""
    assert resends_seen(requests) == resends
    stats = client.stats()
    assert (stats.accepted, stats.sent, stats.queued) == (CAPTURED, CAPTURED, 0)
    assert (stats.dropped, stats.failed_batches) == (0, 0), stats
    assert stats.retried == resends


# -- 503 bursts --------------------------------------------------------------------------------


def test_503_bursts_deliver_every_event_once(
    sink: LocalSink, make_client: ClientFactory, capture_mode: str
) -> None:
    burst = [ScriptedResponse(503, delay=0.1)] * 4
    sink.script(*burst, 200, *burst, 200, *burst)
    client = make_client(max_retries=5, capture_mode=capture_mode, **FAST)

    run = capture_from_threads(client)
    assert client.flush(timeout=15)

    requests = sink.requests()
    statuses = [r.status for r in requests]
    assert statuses[:14] == [503] * 4 + [200] + [503] * 4 + [200] + [503] * 4
    assert set(statuses[14:]) == {200}
    assert_capture_never_waited(run, first_success(requests))
    stored = assert_every_event_stored(sink, run)
    assert max(stored.values()) == 1  # a 503 stores nothing, so a resend is no duplicate
    assert_failed_requests_resent_unchanged(requests, capture_mode)
    assert_stats_add_up(client, sink.requests(), resends=12)


# -- 429 with Retry-After ----------------------------------------------------------------------


def test_429_retry_after_is_waited_before_each_resend(
    sink: LocalSink, make_client: ClientFactory, capture_mode: str
) -> None:
    sink.script(ScriptedResponse(429, retry_after="1"), ScriptedResponse(429, retry_after="1"))
    # retry_base_delay 0.02: only Retry-After can explain a 1 s wait
    client = make_client(capture_mode=capture_mode, **FAST)

    run = capture_from_threads(client)
    assert client.flush(timeout=15)

    requests = sink.requests()
    first, second, third = requests[:3]
    assert [first.status, second.status, third.status] == [429, 429, 200]
    for limited, resend in ((first, second), (second, third)):
        waited = resend.received_at - limited.received_at
        assert 1.0 <= waited < 2.0, f"resent after {waited:.3f}s"
    assert_capture_never_waited(run, third.received_at)
    stored = assert_every_event_stored(sink, run)
    assert max(stored.values()) == 1
    assert_failed_requests_resent_unchanged(requests, capture_mode)
    assert_stats_add_up(client, sink.requests(), resends=2)


# -- connection refused, then the server comes up ----------------------------------------------


def unused_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refused_connections_until_the_server_starts(capture_mode: str) -> None:
    port = unused_port()
    # Backoff ceilings 0.1, 0.2, 0.4, ... s: eight retries span at least 12.75 s, the first
    # five at most 3.1 s, so the 2.5 s outage is bridged by the retries of the first batch.
    client = Client(API_KEY, host=f"http://127.0.0.1:{port}", retry_base_delay=0.1,
                    max_retries=8, capture_mode=capture_mode, **FAST)
    try:
        began = time.monotonic()
        run = capture_from_threads(client)
        time.sleep(max(0.0, began + 2.5 - time.monotonic()))
        with LocalSink(port=port) as sink:
            started_at = time.monotonic()
            assert client.flush(timeout=15)
            requests = sink.requests()
            stored = assert_every_event_stored(sink, run)
    finally:
        client.shutdown(timeout=2)

    assert_capture_never_waited(run, started_at)
    assert max(stored.values()) == 1
    # Refused attempts never reach a server: the sink saw each batch once, all answered 200.
    assert {r.status for r in requests} == {200}
    assert_sent_in_mode(requests, capture_mode)
    assert sum(len(r.uuids) for r in requests) == CAPTURED
    # Refused attempts reach no server, so the endpoint cannot count them; the backoff note
    # above gives the least the first batch needed to bridge 2.5 s of refusals.
    assert resends_seen(requests) == 0
    stats = client.stats()
    assert (stats.accepted, stats.sent, stats.queued) == (CAPTURED, CAPTURED, 0)
    assert (stats.dropped, stats.failed_batches) == (0, 0), stats
    assert stats.retried >= 5


# -- a server that accepts and never answers ---------------------------------------------------


def test_hung_requests_time_out_and_are_resent(
    sink: LocalSink, make_client: ClientFactory, capture_mode: str
) -> None:
    sink.script(ScriptedResponse(hang=True), ScriptedResponse(hang=True))
    client = make_client(timeout=0.5, capture_mode=capture_mode, **FAST)

    run = capture_from_threads(client)
    assert client.flush(timeout=15)

    requests = sink.requests()
    hung, hung_again, answered = requests[:3]
    assert [hung.status, hung_again.status, answered.status] == [0, 0, 200]
    assert hung_again.received_at - hung.received_at >= 0.5  # waited for the timeout
    assert_capture_never_waited(run, answered.received_at)
    # The sink received the first batch three times but, hanging before it stored anything,
    # stored it once: the honest count of receptions is at-least-once, storage is exactly once.
    received = Counter(uuid for r in requests for uuid in r.uuids)
    assert sum(count - 1 for count in received.values()) == 2 * len(hung.uuids)
    stored = assert_every_event_stored(sink, run)
    assert max(stored.values()) == 1
    assert_failed_requests_resent_unchanged(requests, capture_mode)
    assert_stats_add_up(client, sink.requests(), resends=2)


def test_answer_lost_after_processing_is_resent_with_the_same_uuids(
    sink: LocalSink, make_client: ClientFactory, capture_mode: str
) -> None:
    """The server stores the batch but answers after the client's timeout: at-least-once."""
    sink.script(ScriptedResponse(delay=1.0))
    client = make_client(timeout=0.5, capture_mode=capture_mode, **FAST)

    run = capture_from_threads(client)
    assert client.flush(timeout=15)

    slow, resend = sink.requests()[:2]
    assert resend.uuids == slow.uuids
    assert_sent_in_mode(sink.requests(), capture_mode)
    assert_same_attempt_continued(slow, resend, capture_mode)
    assert_capture_never_waited(run, resend.received_at)
    # The slow request stores its batch once its delay is over, after the resend did.
    sink.wait_for_events(CAPTURED + len(slow.uuids), timeout=5)
    stored = assert_every_event_stored(sink, run)
    duplicates = {uuid for uuid, count in stored.items() if count > 1}
    assert duplicates == set(slow.uuids)
    assert max(stored.values()) == 2
    # The two copies are the same event, so deduplicating by uuid loses nothing.
    for uuid in duplicates:
        copies = [e for e in sink.events() if e["uuid"] == uuid]
        assert copies[0] == copies[1]
    assert_stats_add_up(client, sink.requests(), resends=1)


# -- a server that closes the connection -------------------------------------------------------


def test_connections_dropped_before_the_answer(
    sink: LocalSink, make_client: ClientFactory, capture_mode: str
) -> None:
    dropped = ScriptedResponse(drop_connection=True, delay=0.1)
    sink.script(dropped, dropped, dropped, 200, dropped, dropped)
    client = make_client(max_retries=4, capture_mode=capture_mode, **FAST)

    run = capture_from_threads(client)
    assert client.flush(timeout=15)

    requests = sink.requests()
    assert [r.status for r in requests[:6]] == [0, 0, 0, 200, 0, 0]
    assert_capture_never_waited(run, first_success(requests))
    stored = assert_every_event_stored(sink, run)
    assert max(stored.values()) == 1
    assert_failed_requests_resent_unchanged(requests, capture_mode)
    assert_stats_add_up(client, sink.requests(), resends=5)


class CuttingProxy:
    """A loopback HTTP proxy to the sink that cuts the first ``cuts`` answers in half.

    Each request is forwarded whole, so the sink processes it; the client then gets the status
    line, the headers (announcing the full length) and half the body before the connection
    closes. Every answer closes its connection, so each request arrives on a new one; one
    connection is served at a time (the client's sender is sequential anyway).
    """

    def __init__(self, target_port: int, cuts: int) -> None:
        self._target_port = target_port
        self._cuts_left = cuts
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            with connection:
                self._relay(connection)

    def _relay(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        method, path, headers, body = _read_request(connection)
        upstream = http.client.HTTPConnection("127.0.0.1", self._target_port, timeout=5)
        try:
            upstream.request(method, path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        cut = self._cuts_left > 0
        if cut:
            self._cuts_left -= 1
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                head += f"{name}: {value}\r\n"
        head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        sent = payload[: len(payload) // 2] if cut else payload
        connection.sendall(head.encode("latin-1") + sent)


def _read_request(connection: socket.socket) -> tuple[str, str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, "the client closed the connection mid-request"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = dict(line.split(": ", 1) for line in header_lines)
    skip = {"host", "connection", "content-length"}
    length = int(next(v for k, v in headers.items() if k.lower() == "content-length"))
    while len(body) < length:
        body += connection.recv(65536)
    return method, path, {k: v for k, v in headers.items() if k.lower() not in skip}, body


@pytest.mark.parametrize("cut_status", [503, 200])
def test_answers_cut_mid_body_are_retried(
    sink: LocalSink, cut_status: int, capture_mode: str
) -> None:
    """A 503 cut mid-body stored nothing; a 200 cut mid-body was stored, and is stored again."""
    sink.script(ScriptedResponse(cut_status, delay=0.5))
    with CuttingProxy(sink.port, cuts=1) as proxy:
        client = Client(API_KEY, host=proxy.url, retry_base_delay=0.02,
                        capture_mode=capture_mode, **FAST)
        try:
            run = capture_from_threads(client)
            assert client.flush(timeout=15)
        finally:
            client.shutdown(timeout=2)

    requests = sink.requests()
    cut, resend = requests[:2]
    assert (cut.status, resend.status) == (cut_status, 200)
    assert resend.uuids == cut.uuids
    assert_sent_in_mode(requests, capture_mode)
    assert_same_attempt_continued(cut, resend, capture_mode)
    assert_capture_never_waited(run, resend.received_at)
    stored = assert_every_event_stored(sink, run)
    duplicates = {uuid for uuid, count in stored.items() if count > 1}
    assert duplicates == (set(cut.uuids) if cut_status == 200 else set())
    assert max(stored.values()) == (2 if cut_status == 200 else 1)
    assert_stats_add_up(client, sink.requests(), resends=1)
