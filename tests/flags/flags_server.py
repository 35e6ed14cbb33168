"""A loopback PostHog for flag tests: ``/flags`` answers from a script, ``/batch/`` stores events.

Every ``/flags`` request is recorded whole (path, query, headers, JSON body); each one takes the
next scripted :class:`Answer` (then the default answer). Events posted to ``/batch/`` are kept
in :attr:`FlagsServer.events`, so ``$feature_flag_called`` is checked where it arrives.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import json
import threading
import urllib.parse
from typing import Any


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = dataclasses.field(default_factory=lambda: {"featureFlags": {}})
    delay: float = 0.0  # seconds before the answer starts
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class FlagsRequest:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    raw_body: bytes

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw_body)
        return data


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (it was cut off at its timeout) is expected here."""


class FlagsServer:
    def __init__(self) -> None:
        self.flags_requests: list[FlagsRequest] = []
        self.events: list[dict[str, Any]] = []
        self.default = Answer()
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> FlagsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *answers: Answer | dict[str, Any] | int) -> None:
        """Queue answers for the next ``/flags`` requests: an Answer, a 200 body, or a status."""
        with self._lock:
            for answer in answers:
                if isinstance(answer, int):
                    answer = Answer(answer, {"error": "Server error"})
                elif isinstance(answer, dict):
                    answer = Answer(200, answer)
                self._script.append(answer)

    def respond_with(self, body: dict[str, Any]) -> None:
        self.default = Answer(200, body)

    def wait_for_events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for event in self.events if event["event"] == name]

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                url = urllib.parse.urlsplit(self.path)
                if url.path.rstrip("/") == "/batch":
                    self._store_batch(body)
                    return
                request = FlagsRequest(url.path, urllib.parse.parse_qs(url.query),
                                       {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.flags_requests.append(request)
                answer = server._next_answer()
                if answer.delay and server.stopping.wait(answer.delay):
                    return
                content = answer.body if isinstance(answer.body, bytes) else \
                    json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _store_batch(self, body: bytes) -> None:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                events = json.loads(body)["batch"]
                with server._arrived:
                    server.events.extend(events)
                    server._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "12")
                self.end_headers()
                self.wfile.write(b'{"status":1}')

        return Handler
