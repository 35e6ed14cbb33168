"""Per-request cost of each library's ASGI middleware, against the same app with none.

Every run measures the bare app and the variant's wrapped app back to back (alternating which
goes first), so each ratio compares numbers taken under the same machine conditions.

- ``asgi_direct``: a Starlette app called directly, in process, one request after another.
- ``asgi_server``: the app under a real uvicorn (one worker), loaded over loopback by
  :mod:`bench.loadgen` with a fixed number of keep-alive connections. uvicorn picks its HTTP
  parser and event loop as in production (httptools and uvloop with ``uvicorn[standard]``);
  ``BENCH_UVICORN_ARGS="--http h11 --loop asyncio"`` measures the pure-Python stack instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from .calls import asgi_scope
from .core import Benchmark, RunResult, Settings, paired_samples, percentile
from .endpoint import Endpoint
from .loadgen import LoadResult, generate_load
from .variants import REQUEST_HEADERS, Variant, build_starlette_app

__all__ = ["WEB_BENCHMARKS"]

ROOT = Path(__file__).resolve().parent.parent
REQUEST_PATH = "/items/42"
SERVER_WARMUP_S = 1.0

Message = dict[str, Any]


async def _requests(app: Callable[..., Awaitable[None]], count: int) -> float:
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
            loop.run_until_complete(_requests(app, block * 5))
        paired_samples(bare, wrapped,
                       lambda app, count: loop.run_until_complete(_requests(app, count)),
                       settings.request_samples, block, result)
    finally:
        loop.close()
        variant.shutdown(client, 5.0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _uvicorn(variant: str, endpoint_url: str) -> Iterator[int]:
    """A uvicorn serving :mod:`bench.served` for ``variant``; yields its port."""
    port = _free_port()
    env = {**os.environ, "BENCH_VARIANT": variant, "BENCH_HOST": endpoint_url,
           "BENCH_API_KEY": f"phc_bench_server_{uuid.uuid4().hex[:10]}",
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uvicorn", "bench.served:app", "--port", str(port),
               "--workers", "1", "--no-access-log", "--log-level", "warning",
               *os.environ.get("BENCH_UVICORN_ARGS", "").split()]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn ({variant}) exited: {process.stdout.read()[:500]}"
                                   if process.stdout else f"uvicorn ({variant}) exited")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn ({variant}) did not start listening")
            time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _load(variant: str, endpoint_url: str, settings: Settings) -> LoadResult:
    with _uvicorn(variant, endpoint_url) as port:
        connections = settings.server_connections
        generate_load("127.0.0.1", port, REQUEST_PATH, headers=REQUEST_HEADERS,
                      connections=connections, duration=SERVER_WARMUP_S)
        measured = generate_load("127.0.0.1", port, REQUEST_PATH, headers=REQUEST_HEADERS,
                                 connections=connections, duration=settings.server_seconds)
    if measured.errors or not measured.requests:
        raise RuntimeError(f"{variant}: {measured.errors} failed of "
                           f"{measured.requests + measured.errors} requests")
    return measured


def _asgi_server(variant: Variant, endpoint: Endpoint, settings: Settings,
                 result: RunResult) -> None:
    result.sends_events = False
    names = ["bare", variant.name] if result.round % 2 else [variant.name, "bare"]
    loads = {name: _load(name, endpoint.url, settings) for name in names}
    ours, bare = loads[variant.name], loads["bare"]
    result.metrics = {
        "requests_per_s": ours.requests_per_s,
        "bare_requests_per_s": bare.requests_per_s,
        "ratio_to_bare": ours.requests_per_s / bare.requests_per_s,
        "p99_ms": percentile(ours.latencies_s, 0.99) * 1000,
        "bare_p99_ms": percentile(bare.latencies_s, 0.99) * 1000,
    }


WEB_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("asgi_direct", "asgi", "Starlette request, called directly", _asgi_direct),
    Benchmark("asgi_server", "asgi", "uvicorn + Starlette over loopback", _asgi_server),
)
