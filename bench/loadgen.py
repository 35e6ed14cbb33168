"""A bounded, closed-loop HTTP/1.1 load generator for loopback servers.

``connections`` keep-alive connections each send one request, wait for the whole response,
and send the next, for ``duration`` seconds: the load never exceeds what the server answers.
Requests are pre-encoded and responses parsed only as far as status and Content-Length, so one
core generates far more load than one Python server core can answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import re
import time
from typing import Any

__all__ = ["LoadResult", "generate_load"]

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclasses.dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_s: list[float]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class _Connection(asyncio.Protocol):
    def __init__(self, request: bytes, result: LoadResult, deadline: float,
                 closed: asyncio.Future[None]) -> None:
        self._request = request
        self._result = result
        self._deadline = deadline
        self._closed = closed
        self._buffer = bytearray()
        self._sent_at = 0.0
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._send()

    def _send(self) -> None:
        self._buffer.clear()
        self._sent_at = time.perf_counter()
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = _CONTENT_LENGTH.search(buffer, 0, end + 2)
        if length is None:  # this generator needs Content-Length; count it and stop
            self._result.errors += 1
            self._transport.close()
            return
        if len(buffer) < end + 4 + int(length.group(1)):
            return
        now = time.perf_counter()
        if buffer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            self._result.requests += 1
            self._result.latencies_s.append(now - self._sent_at)
        else:
            self._result.errors += 1
        if now < self._deadline:
            self._send()
        else:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


async def _run(host: str, port: int, path: str, headers: dict[str, str], connections: int,
               duration: float) -> LoadResult:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}",
             *(f"{name}: {value}" for name, value in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    result = LoadResult(0, 0, 0.0, [])
    start = time.perf_counter()
    deadline = start + duration
    closed = [loop.create_future() for _ in range(connections)]
    for future in closed:
        await loop.create_connection(
            functools.partial(_Connection, request, result, deadline, future), host, port
        )
    await asyncio.wait_for(asyncio.gather(*closed), timeout=duration + 30)
    result.seconds = time.perf_counter() - start
    return result


def generate_load(host: str, port: int, path: str, *, headers: dict[str, str] | None = None,
                  connections: int = 16, duration: float = 10.0) -> LoadResult:
    """Load ``http://host:port/path`` for ``duration`` seconds; block until done."""
    loop: asyncio.AbstractEventLoop
    try:
        loop = importlib.import_module("uvloop").new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        result: LoadResult = loop.run_until_complete(
            _run(host, port, path, headers or {}, connections, duration)
        )
        return result
    finally:
        loop.close()
