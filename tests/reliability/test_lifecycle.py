"""Process lifecycle under real servers: every answered request's event arrives, exactly once.

gunicorn (stopped by SIGTERM in the middle of traffic; ``--preload`` with the client built in the
master before fork) and ``uvicorn --workers 2`` serve the apps of ``tests/reliability/apps`` as
child processes, loaded by a few plain threads over ``http.client``; their events go to a real
local capture endpoint in this process and are matched there by request number. Each scenario
runs in both capture modes (the apps read ``POSTHOG_CAPTURE_MODE``).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.e2e.servers import free_port, serve
from tests.reliability.conftest import assert_sent_in_mode

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="gunicorn forks; process states are read from /proc")

GRACEFUL_TIMEOUT = 5.0


def environment(sink: LocalSink, capture_mode: str) -> dict[str, str]:
    """The apps build their clients from these (``POSTHOG_CAPTURE_MODE``: v0 or v1)."""
    return {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
            "POSTHOG_CAPTURE_MODE": capture_mode}


def gunicorn(app: str, port: int, *options: str) -> list[str]:
    return ["gunicorn", app, "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            "--graceful-timeout", f"{GRACEFUL_TIMEOUT:g}", *options]


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """One request on a fresh connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def get_all(port: int, paths: Iterable[str], concurrency: int = 8) -> list[int]:
    """Statuses of ``paths``, requested by ``concurrency`` threads at a time."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return [status for status, _ in pool.map(lambda path: get(port, path), paths)]


def master_pid(port: int) -> int:
    status, body = get(port, "/pids")
    assert status == 200
    return int(json.loads(body)["master"])


def exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie (exited, not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until_exited(pids: Iterable[int], timeout: float) -> float:
    """Seconds until every pid exited; fails after ``timeout``."""
    started = time.monotonic()
    waiting = set(pids)
    while waiting:
        waiting = {pid for pid in waiting if not exited(pid)}
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"processes {sorted(waiting)} still run after {timeout:g}s"
        time.sleep(0.02)
    return time.monotonic() - started


class Traffic:
    """Threads requesting ``/work/<n>`` with unique numbers until the server stops answering.

    Records the numbers answered 200 (and the worker pid each answer names), how many answers
    came after :meth:`mark_stopping`, and how many requests were started after it.
    """

    def __init__(self, port: int, threads: int, delay: float) -> None:
        self.port = port
        self.delay = delay
        self.answered: dict[int, int] = {}  # request number -> worker pid
        self.answered_after_stop = 0
        self.started_after_stop = 0
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for_answers(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < count:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answers in time"
            time.sleep(0.01)

    def worker_pids(self) -> set[int]:
        with self._lock:
            return set(self.answered.values())

    def mark_stopping(self) -> None:
        """From now on, a thread ends at its first failed request."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a traffic thread is stuck"

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self._lock:
                number = next(self._numbers)
                after_stop = self._stopping.is_set()
                self.started_after_stop += after_stop
            try:
                status, body = get(self.port, f"/work/{number}?delay={self.delay}")
            except OSError:  # refused, reset or closed: expected once the server stops
                status, body = 0, ""
            if status == 200:
                with self._lock:
                    self.answered[number] = int(body)
                    self.answered_after_stop += self._stopping.is_set()
            elif self._stopping.is_set():
                return


def served_events(sink: LocalSink) -> list[dict[str, Any]]:
    return sink.events(event="request served")


def assert_exactly_once(events: list[dict[str, Any]]) -> Counter[int]:
    """No uuid and no request number arrives twice; returns the count per request number."""
    uuids = [e["uuid"] for e in events]
    assert len(set(uuids)) == len(uuids), "an event arrived twice"
    numbers = Counter(e["properties"]["request_number"] for e in events)
    assert [n for n, times in numbers.items() if times > 1] == [], "a request captured twice"
    return numbers


def test_gunicorn_sigterm_mid_traffic_loses_no_answered_request(
    sink: LocalSink, capture_mode: str
) -> None:
    port = free_port()
    command = gunicorn("tests.reliability.apps.flask_traffic:app", port,
                       "--workers", "2", "--worker-class", "gthread", "--threads", "4")
    with serve(command, port, environment(sink, capture_mode)):
        master = master_pid(port)
        traffic = Traffic(port, threads=6, delay=0.05).start()
        traffic.wait_for_answers(150)
        traffic.mark_stopping()
        os.kill(master, signal.SIGTERM)
        workers = traffic.worker_pids()
        stop_seconds = wait_until_exited([master, *workers], timeout=GRACEFUL_TIMEOUT + 5)
        traffic.join(timeout=5)

    assert traffic.answered_after_stop > 0, "no request was in flight at SIGTERM"
    assert len(workers) == 2
    # the workers finished in-flight requests and flushed, well before gunicorn's SIGKILL
    assert stop_seconds < GRACEFUL_TIMEOUT
    arrived = assert_exactly_once(served_events(sink))
    assert_sent_in_mode(sink.requests(), capture_mode)
    lost = sorted(set(traffic.answered) - set(arrived))
    assert lost == [], f"{len(lost)} answered requests have no event: {lost[:10]}"
    print(f"\ngunicorn SIGTERM: {len(traffic.answered)} answered "
          f"({traffic.answered_after_stop} after SIGTERM, {traffic.started_after_stop} started "
          f"after it), {len(arrived)} events arrived, stopped in {stop_seconds:.2f}s")


def test_gunicorn_preload_forks_a_clean_client_into_each_worker(
    sink: LocalSink, capture_mode: str
) -> None:
    requests = 2000
    port = free_port()
    command = gunicorn("tests.reliability.apps.flask_preloaded:app", port,
                       "--preload", "--workers", "4")
    started = time.monotonic()
    with serve(command, port, environment(sink, capture_mode)):
        master = master_pid(port)
        statuses = get_all(port, (f"/work/{n}" for n in range(requests)))
        stopping = time.monotonic()
    stop_seconds = time.monotonic() - stopping

    assert statuses == [200] * requests
    events = served_events(sink)
    assert sorted(assert_exactly_once(events)) == list(range(requests))
    assert_sent_in_mode(sink.requests(), capture_mode)
    worker_pids = {e["properties"]["pid"] for e in events}
    assert len(worker_pids) == 4
    assert master not in worker_pids
    # the master's event, queued when the workers were forked, is delivered by the master alone
    booted = sink.events(event="master booted")
    assert len(booted) == 1, f"the master's pre-fork event arrived {len(booted)} times"
    assert booted[0]["properties"]["pid"] == master
    assert len(sink.events()) == requests + 1
    print(f"\ngunicorn --preload: {requests} requests + 1 master event, "
          f"{len(sink.events())} arrived from {len(worker_pids)} workers; "
          f"served in {stopping - started:.1f}s, stopped in {stop_seconds:.2f}s")


def test_uvicorn_workers_flush_at_lifespan_shutdown(
    sink: LocalSink, capture_mode: str
) -> None:
    requests = 1000
    port = free_port()
    command = ["uvicorn", "tests.reliability.apps.starlette_traffic:app", "--port", str(port),
               "--workers", "2", "--log-level", "warning"]
    with serve(command, port, environment(sink, capture_mode)):
        statuses = get_all(port, (f"/work/{n}" for n in range(requests)))
        held_until_shutdown = len(sink.events())
        stopping = time.monotonic()
    stop_seconds = time.monotonic() - stopping

    assert statuses == [200] * requests
    assert held_until_shutdown == 0, "the app's client should hold its events until shutdown"
    events = served_events(sink)
    assert sorted(assert_exactly_once(events)) == list(range(requests))
    assert_sent_in_mode(sink.requests(), capture_mode)
    pids = Counter(e["properties"]["pid"] for e in events)
    assert len(pids) == 2, f"events from {len(pids)} worker(s): both must flush at shutdown"
    assert stop_seconds < 10
    print(f"\nuvicorn --workers 2: {requests} requests, {len(events)} arrived "
          f"({dict(pids)} per pid), stopped in {stop_seconds:.2f}s")
