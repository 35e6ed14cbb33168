"""A loopback ``/flags/definitions`` for the shared-cache tests: ETag/304, 401/402 on demand.

Every request is recorded with its arrival time (``time.monotonic()``, comparable across the
processes of one machine) and the ``X-Worker`` header the test's fetch sends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from posthog_integrations.feature_flags.local.source import Fetched


@dataclasses.dataclass(frozen=True)
class Arrival:
    at: float
    worker: str
    etag_sent: str | None
    status: int


def definitions(*keys: str) -> dict[str, Any]:
    """A definitions answer with one active flag per key."""
    flags = [{"id": number, "key": key, "active": True, "filters": {
        "groups": [{"properties": [], "rollout_percentage": 100}]}}
        for number, key in enumerate(keys, 1)]
    return {"flags": flags, "group_type_mapping": {}, "cohorts": {}}


class DefinitionsServer:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.arrivals: list[Arrival] = []
        self.status = 200  # anything else is answered instead of the definitions
        self._lock = threading.Lock()
        self.set_definitions(data if data is not None else definitions("flag-v1"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)

    def set_definitions(self, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        with self._lock:
            self._body = body
            self._etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def since(self, moment: float) -> list[Arrival]:
        with self._lock:
            return [arrival for arrival in self.arrivals if arrival.at >= moment]

    def __enter__(self) -> DefinitionsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sent = self.headers.get("If-None-Match")
                with owner._lock:
                    body, etag, status = owner._body, owner._etag, owner.status
                    if status == 200 and sent == etag:
                        status = 304
                    owner.arrivals.append(Arrival(time.monotonic(),
                                                  self.headers.get("X-Worker", ""), sent, status))
                self.send_response(status)
                if status in (200, 304):
                    self.send_header("ETag", etag)
                payload = body if status == 200 else b""
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler


def http_fetch(url: str, worker: str = "") -> Callable[[str | None], Fetched]:
    """One real HTTP poll of ``url``/flags/definitions, as the brief's ``fetch`` callable."""

    def fetch(etag: str | None) -> Fetched:
        headers = {"X-Worker": worker}
        if etag:
            headers["If-None-Match"] = etag
        request = urllib.request.Request(f"{url}/flags/definitions?send_cohorts",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return Fetched("updated", json.loads(response.read()),
                               response.headers.get("ETag"), "")
        except urllib.error.HTTPError as error:
            outcome = {304: "not_modified", 401: "unauthorized", 402: "quota_limited"}.get(
                error.code, "failed")
            return Fetched(outcome, None, error.headers.get("ETag") or etag, f"HTTP {error.code}")
        except OSError as error:
            return Fetched("failed", None, None, type(error).__name__)

    return fetch
