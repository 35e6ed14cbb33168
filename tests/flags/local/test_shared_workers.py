"""Four real worker processes share one definitions poll per interval through a real Redis.

Each worker (``shared_worker.py``) runs the client's definitions poller every ``INTERVAL``
through a shared source, against a loopback definitions server, each worker at its own moment
of the interval. The bound on requests comes from the lock: a process polls only while it holds
the lock, a lock lives ``INTERVAL`` and its holder renews it at most once per interval (the
poller waits an interval after each poll), so polls are at least one interval apart and a
window of k intervals holds at most k + 1 of them (one at each edge: the +1 slack).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Callable

import pytest

from posthog_integrations.feature_flags.local.shared_store import connect
from tests.flags.local.definitions_server import DefinitionsServer, definitions
from tests.redis_server import RedisServer

INTERVAL = 0.3
NAMES = ("w1", "w2", "w3", "w4")
ROOT = Path(__file__).resolve().parents[3]
PATIENCE = 30.0  # seconds: generous, for a loaded machine; no assertion rests on it being tight


class Worker:
    def __init__(self, name: str, redis_url: str, server_url: str, namespace: str,
                 log: Path, offset: float) -> None:
        self.name = name
        self.log = log
        self.reports: list[dict[str, Any]] = []
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.flags.local.shared_worker", redis_url, server_url,
             str(INTERVAL), namespace, name, str(offset)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.reports.append(json.loads(line))

    @property
    def keys(self) -> list[str] | None:
        return self.reports[-1]["keys"] if self.reports else None

    def log_lines(self, fragment: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if fragment in line]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


@pytest.fixture
def server() -> Iterator[DefinitionsServer]:
    with DefinitionsServer() as running:
        yield running


@pytest.fixture
def start_workers(server: DefinitionsServer, namespace: str,
                  tmp_path: Path) -> Iterator[Callable[[str], list[Worker]]]:
    started: list[Worker] = []

    def start(redis_url: str) -> list[Worker]:
        for number, name in enumerate(NAMES):
            started.append(Worker(name, redis_url, server.url, namespace,
                                  tmp_path / f"{name}.log", number * INTERVAL / len(NAMES)))
        return list(started)

    yield start
    for worker in started:
        worker.kill()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {PATIENCE} s for {what}")
        time.sleep(0.05)


def all_hold(workers: list[Worker], keys: list[str]) -> Callable[[], bool]:
    return lambda: all(worker.keys == keys for worker in workers)


def polls_over_five_intervals(server: DefinitionsServer) -> tuple[int, int]:
    """Definitions requests in a window of about five intervals, and the most allowed."""
    started = time.monotonic()
    time.sleep(5 * INTERVAL)
    ended = time.monotonic()
    arrived = [arrival for arrival in server.since(started) if arrival.at <= ended]
    return len(arrived), int((ended - started) / INTERVAL) + 1


def test_four_workers_make_one_poll_per_interval_and_all_follow_a_change(
        redis_server: RedisServer, server: DefinitionsServer,
        start_workers: Callable[[str], list[Worker]]) -> None:
    workers = start_workers(redis_server.url)
    wait_for(all_hold(workers, ["flag-v1"]), "every worker to load the definitions")

    polls, allowed = polls_over_five_intervals(server)
    print(f"{polls} definitions requests in a window allowing {allowed}")
    assert 1 <= polls <= allowed, (polls, allowed)
    assert allowed <= 7  # about five intervals (+1 edge, +1 for a late wake-up of this test)

    server.set_definitions(definitions("flag-v2"))
    wait_for(all_hold(workers, ["flag-v2"]), "every worker to hold the new definitions")
    assert all(not worker.log_lines("flag definitions cache") for worker in workers)


def test_when_the_polling_worker_is_killed_another_takes_over(
        redis_server: RedisServer, server: DefinitionsServer, namespace: str,
        start_workers: Callable[[str], list[Worker]]) -> None:
    workers = start_workers(redis_server.url)
    wait_for(all_hold(workers, ["flag-v1"]), "every worker to load the definitions")

    holder_name = server.arrivals[-1].worker
    holder = next(worker for worker in workers if worker.name == holder_name)
    holder.kill()
    killed_at = time.monotonic()
    client = connect(redis_server.url)
    assert client.pttl(f"{namespace}:lock") <= INTERVAL * 1000  # gone within one interval
    client.close()
    survivors = [worker for worker in workers if worker is not holder]

    wait_for(lambda: any(arrival.worker != holder_name for arrival in server.since(killed_at)),
             "another worker to poll")
    takeover = next(arrival for arrival in server.since(killed_at)
                    if arrival.worker != holder_name)
    print(f"first poll by another worker {takeover.at - killed_at:.3f} s after the kill")
    polls, allowed = polls_over_five_intervals(server)
    print(f"{polls} definitions requests in a window allowing {allowed}")
    assert 1 <= polls <= allowed, (polls, allowed)
    server.set_definitions(definitions("flag-v2"))
    wait_for(all_hold(survivors, ["flag-v2"]), "the survivors to hold the new definitions")


def test_with_redis_stopped_each_worker_polls_itself_logged_once_then_shares_again(
        own_redis_server: RedisServer, server: DefinitionsServer,
        start_workers: Callable[[str], list[Worker]]) -> None:
    workers = start_workers(own_redis_server.url)
    wait_for(all_hold(workers, ["flag-v1"]), "every worker to load the definitions")

    own_redis_server.stop()
    stopped_at = time.monotonic()
    server.set_definitions(definitions("flag-v2"))
    wait_for(lambda: {arrival.worker for arrival in server.since(stopped_at)} == set(NAMES),
             "every worker to poll the server itself")
    wait_for(all_hold(workers, ["flag-v2"]), "every worker to hold the new definitions")
    several_polls_later = [len(worker.reports) + 3 for worker in workers]
    wait_for(lambda: all(len(worker.reports) >= count
                         for worker, count in zip(workers, several_polls_later)),
             "three more polls by each worker")
    assert [len(worker.log_lines("does not answer")) for worker in workers] == [1, 1, 1, 1]

    own_redis_server.start()
    wait_for(lambda: all(worker.log_lines("answers again") for worker in workers),
             "every worker to use Redis again")
    polls, allowed = polls_over_five_intervals(server)
    print(f"{polls} definitions requests in a window allowing {allowed}")
    assert 1 <= polls <= allowed, (polls, allowed)
    assert [len(worker.log_lines("does not answer")) for worker in workers] == [1, 1, 1, 1]
    assert [len(worker.log_lines("answers again")) for worker in workers] == [1, 1, 1, 1]
    server.set_definitions(definitions("flag-v3"))
    wait_for(all_hold(workers, ["flag-v3"]), "every worker to hold the newest definitions")
