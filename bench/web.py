"""Per-request cost of each library's ASGI middleware, against the same app with none.

Every run measures the bare app and the variant's wrapped app back to back (alternating which
goes first), so each ratio compares numbers taken under the same machine conditions.

- ``asgi_direct``: a Starlette app called directly, in process, one request after another.
- ``asgi_server``: the app under a real uvicorn (one worker), loaded over loopback by
  :mod:`bench.loadgen` with a fixed number of keep-alive connections (see
  :mod:`bench.servers`). uvicorn picks its HTTP parser and event loop as in production
  (httptools and uvloop with ``uvicorn[standard]``);
  ``BENCH_UVICORN_ARGS="--http h11 --loop asyncio"`` measures the pure-Python stack instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Callable

from .calls import asgi_scope
from .core import Benchmark, RunResult, Settings, paired_samples
from .endpoint import Endpoint
from .servers import REQUEST_PATH, compare_with_bare
from .variants import Variant, build_starlette_app

__all__ = ["WEB_BENCHMARKS", "time_asgi_requests"]

Message = dict[str, Any]


async def time_asgi_requests(app: Callable[..., Awaitable[None]], count: int) -> float:
    """Seconds for ``count`` sequential requests through ``app``."""
    template = asgi_scope(REQUEST_PATH)
    request: Message = {"type": "http.request", "body": b"", "more_body": False}
    status: list[int] = []

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    clock = time.perf_counter
    start = clock()
    for _ in range(count):
        await app(dict(template), receive, send)
    elapsed = clock() - start
    if status.count(200) != count:
        raise RuntimeError(f"expected {count} responses of 200, got {status[:5]}...")
    return elapsed


def _asgi_direct(variant: Variant, endpoint: Endpoint, settings: Settings,
                 result: RunResult) -> None:
    result.sends_events = False
    client = variant.make_client(endpoint.url, f"phc_bench_{uuid.uuid4().hex[:10]}")
    loop = asyncio.new_event_loop()
    try:
        bare = build_starlette_app(None, None)
        wrapped = build_starlette_app(variant, client)
        block = settings.request_block
        for app in (bare, wrapped):  # build Starlette's middleware stack, warm caches
            loop.run_until_complete(time_asgi_requests(app, block * 5))
        paired_samples(bare, wrapped,
                       lambda app, count: loop.run_until_complete(time_asgi_requests(app, count)),
                       settings.request_samples, block, result)
    finally:
        loop.close()
        variant.shutdown(client, 5.0)


def _uvicorn_command(port: int) -> list[str]:
    """uvicorn serving :mod:`bench.served` on ``port`` (one worker, no access log)."""
    return [sys.executable, "-m", "uvicorn", "bench.served:app", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning",
            *os.environ.get("BENCH_UVICORN_ARGS", "").split()]


def _asgi_server(variant: Variant, endpoint: Endpoint, settings: Settings,
                 result: RunResult) -> None:
    compare_with_bare(_uvicorn_command, variant, endpoint, settings, result)


WEB_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("asgi_direct", "asgi", "Starlette request, called directly", _asgi_direct),
    Benchmark("asgi_server", "asgi", "uvicorn + Starlette over loopback", _asgi_server),
)
