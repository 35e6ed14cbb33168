"""End to end: a visitor who disconnects mid-stream leaves nothing of theirs on the worker.

One gunicorn sync worker (one thread) serves ``tests/e2e/django_served.py``. Request 1 comes
from visitor A and streams a body whose generator holds ``new_context()`` open across its
yields; the client reads the first bytes and closes the socket, so gunicorn gives up writing
and calls ``response.close()`` after the middleware has long returned. Anonymous requests
follow one by one on the same thread. When gunicorn has stopped on SIGTERM (the worker flushes
as it exits), the local capture endpoint must hold no event of theirs with A's distinct id,
session, URL or tags.
"""

from __future__ import annotations

import http.client
import socket
import sys
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.e2e.servers import free_port, serve

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="gunicorn runs on POSIX; tested where it is deployed")

VISITOR = "visitor-a"
SESSION = "session-of-a"
LATER_REQUESTS = 12
STREAM_CHUNKS = 2000  # 20 s at the body's pace: far longer than the client reads


def stream_then_disconnect(port: int) -> bytes:
    """Ask for A's stream, read its first bytes, then hang up in the middle of it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            f"GET /stream/{VISITOR}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-PostHog-Distinct-Id: {VISITOR}\r\nX-PostHog-Session-Id: {SESSION}\r\n"
            "\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received or len(received) < 20000:
            data = connection.recv(65536)
            if not data:
                break
            received += data
    return received


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def carries_anything_of_a(event: dict[str, Any]) -> list[str]:
    properties = event["properties"]
    found = []
    if event["distinct_id"] == VISITOR:
        found.append("distinct id")
    if properties.get("$session_id") == SESSION:
        found.append("session")
    if VISITOR in str(properties.get("$current_url", "")) or VISITOR in str(
            properties.get("$request_path", "")):
        found.append("url")
    if "visitor_tag" in properties or "stream_tag" in properties:
        found.append("tags")
    return found


@pytest.mark.parametrize("chain", ["sync", "async"])
def test_a_disconnected_stream_leaves_no_identity_on_the_worker(sink: LocalSink,
                                                                chain: str) -> None:
    port = free_port()
    command = ["gunicorn", "tests.e2e.django_served:application", "--bind",
               f"127.0.0.1:{port}", "--workers", "1", "--threads", "1",
               "--worker-class", "sync", "--log-level", "warning", "--graceful-timeout", "5"]
    env = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url, "DJANGO_CHAIN": chain,
           "DJANGO_SETTINGS_MODULE": "tests.e2e.django_served",
           "STREAM_CHUNKS": str(STREAM_CHUNKS)}
    with serve(command, port, env):
        head = stream_then_disconnect(port)
        assert head.startswith(b"HTTP/1.1 200")
        answers = [get(port, f"/visit/{n}/") for n in range(2, LATER_REQUESTS + 2)]
        assert answers == [(200, f"visit {n}".encode()) for n in range(2, LATER_REQUESTS + 2)]

    chunks = sink.events(event="chunk sent")
    assert 0 < len(chunks) < STREAM_CHUNKS, "the stream was not cut short by the disconnect"
    assert all(e["distinct_id"] == VISITOR and e["properties"]["$session_id"] == SESSION
               and e["properties"]["stream_tag"] == f"stream-of-{VISITOR}" for e in chunks)
    visits = sink.events(event="visit")
    assert sorted(e["properties"]["request_number"] for e in visits) == list(
        range(2, LATER_REQUESTS + 2))
    leaks = {e["properties"]["request_number"]: carries_anything_of_a(e) for e in visits}
    assert {number: found for number, found in leaks.items() if found} == {}
    for event in visits:
        number = event["properties"]["request_number"]
        assert event["properties"]["$request_path"] == f"/visit/{number}/"
        assert event["properties"]["$process_person_profile"] is False
    # gunicorn closed the response after the disconnect: the body's clean-up ran as A's
    [closed] = sink.events(event="stream closed")
    assert (closed["distinct_id"], closed["properties"].get("stream_tag")) == (
        VISITOR, f"stream-of-{VISITOR}")
