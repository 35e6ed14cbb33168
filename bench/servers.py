"""Real servers under load: start one per app variant, load it, stop it, compare with bare.

A server benchmark runs the bare app and the variant's wrapped app back to back in every run,
each in a fresh server process (alternating which goes first by round), loads each with
:mod:`bench.loadgen` for a 1 s warm-up and then ``settings.server_seconds``, and records the
wrapped app's requests/s and p99 latency with the bare app's alongside.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .core import RunResult, Settings, percentile
from .endpoint import Endpoint
from .loadgen import LoadResult, generate_load
from .variants import REQUEST_HEADERS, Variant

__all__ = ["REQUEST_PATH", "ROOT", "CommandFn", "child_env", "compare_with_bare", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
REQUEST_PATH = "/items/42"
SERVER_WARMUP_S = 1.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

# Builds a server's command line for a port: ``command(port) -> argv``.
CommandFn = Callable[[int], list[str]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment plus ``extra``, with the checkout first on PYTHONPATH."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(paths)}


def _answers(port: int) -> bool:
    """Whether the server answers the benchmark request with 200 (the app is loaded)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", REQUEST_PATH, headers=REQUEST_HEADERS)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _wait_until_serving(process: subprocess.Popen[str], port: int, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if process.poll() is not None:
            output = process.stdout.read()[:500] if process.stdout else ""
            raise RuntimeError(f"the {name} server exited: {output}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {name} server did not answer within {START_TIMEOUT_S:g} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def _serving(command: CommandFn, variant: str, endpoint_url: str) -> Iterator[int]:
    """A server running ``command`` for app ``variant``; yields its port once it answers."""
    port = free_port()
    env = child_env(BENCH_VARIANT=variant, BENCH_HOST=endpoint_url,
                    BENCH_API_KEY=f"phc_bench_server_{uuid.uuid4().hex[:10]}")
    process = subprocess.Popen(command(port), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_serving(process, port, variant)
        yield port
    finally:
        _stop(process)


def _load(command: CommandFn, variant: str, endpoint_url: str, settings: Settings) -> LoadResult:
    """Warm the server up for 1 s, then measure it for ``settings.server_seconds``."""
    with _serving(command, variant, endpoint_url) as port:
        connections = settings.server_connections
        generate_load("127.0.0.1", port, REQUEST_PATH, headers=REQUEST_HEADERS,
                      connections=connections, duration=SERVER_WARMUP_S)
        measured = generate_load("127.0.0.1", port, REQUEST_PATH, headers=REQUEST_HEADERS,
                                 connections=connections, duration=settings.server_seconds)
    if measured.errors or not measured.requests:
        raise RuntimeError(f"{variant}: {measured.errors} failed of "
                           f"{measured.requests + measured.errors} requests")
    return measured


def compare_with_bare(command: CommandFn, variant: Variant, endpoint: Endpoint,
                      settings: Settings, result: RunResult) -> None:
    """Load the bare and the wrapped app back to back; fill ``result.metrics``."""
    result.sends_events = False
    names = ["bare", variant.name] if result.round % 2 else [variant.name, "bare"]
    loads = {name: _load(command, name, endpoint.url, settings) for name in names}
    wrapped, bare = loads[variant.name], loads["bare"]
    result.metrics = {
        "requests_per_s": wrapped.requests_per_s,
        "bare_requests_per_s": bare.requests_per_s,
        "ratio_to_bare": wrapped.requests_per_s / bare.requests_per_s,
        "p99_ms": percentile(wrapped.latencies_s, 0.99) * 1000,
        "bare_p99_ms": percentile(bare.latencies_s, 0.99) * 1000,
    }
