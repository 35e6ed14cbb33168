"""Real parts for the Celery tests: Redis as the broker, ``celery worker -P prefork`` processes,
and the local capture endpoint they send to over loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from celery import Celery

from posthog_integrations import Client
from posthog_integrations.celery import PostHogCelery
from posthog_integrations.celery import integration as celery_integration
from posthog_integrations.sink import LocalSink
from tests.celery.tasks import register
from tests.conftest import API_KEY
from tests.redis_server import RedisServer, redis_server_executable

ROOT = Path(__file__).resolve().parents[2]
WORKER_PREFIX = "worker"  # the task names tests/celery/worker_app.py registers
READY_TIMEOUT = 90.0  # a loaded 2-core machine may take long to import Celery and fork
EVENT_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def _every_app_integration_restored() -> Iterator[None]:
    """A test that binds ``init_every_app()`` leaves no such binding behind."""
    before = celery_integration.registry.every_app
    yield
    celery_integration.registry.every_app = before


@pytest.fixture(scope="session")
def redis_broker() -> Iterator[RedisServer]:
    with RedisServer(redis_server_executable()) as server:
        yield server


@pytest.fixture(scope="module")
def module_sink() -> Iterator[LocalSink]:
    """One capture endpoint for a module's worker; tests tell their events apart by name."""
    with LocalSink() as running:
        yield running


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:10]}"


def wait_for_events(sink: LocalSink, event: str, count: int = 1,
                    timeout: float = EVENT_TIMEOUT) -> list[dict[str, Any]]:
    """The events named ``event`` once ``count`` of them arrived; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = sink.events(event=event)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            names = sorted({e["event"] for e in sink.events()})
            pytest.fail(f"{len(found)} of {count} {event!r} events arrived in {timeout:g}s; "
                        f"the sink holds {names}")
        time.sleep(0.05)


def events_of_task(sink: LocalSink, task_id: str) -> list[dict[str, Any]]:
    return [e for e in sink.events() if e["properties"].get("celery_task_id") == task_id]


def wait_for_task_event(sink: LocalSink, task_id: str, event: str,
                        timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
    """The first ``event`` captured in task ``task_id``, once it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        for found in events_of_task(sink, task_id):
            if found["event"] == event:
                return found
        if time.monotonic() > deadline:
            names = [e["event"] for e in events_of_task(sink, task_id)]
            pytest.fail(f"no {event!r} for task {task_id} in {timeout:g}s; it has {names}")
        time.sleep(0.05)


class Worker:
    """A real ``celery worker`` subprocess (its own process group) consuming its own queue."""

    def __init__(self, broker: RedisServer, sink: LocalSink, tmp: Path, *, concurrency: int,
                 flush_interval: float = 0.2, extra: tuple[str, ...] = ()) -> None:
        self.queue = f"posthog-tests-{uuid.uuid4().hex[:8]}"
        self.tmp = tmp
        self.log = tmp / "worker.log"
        ready = tmp / "ready"
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("POSTHOG_")
        }
        environment.update({
            "PYTHONPATH": str(ROOT), "POSTHOG_TEST_BROKER": broker.url,
            "POSTHOG_TEST_SINK": sink.url, "POSTHOG_TEST_READY_FILE": str(ready),
            "POSTHOG_TEST_FLUSH_INTERVAL": str(flush_interval),
        })
        command = [sys.executable, "-m", "celery", "-A", "tests.celery.worker_app", "worker",
                   "-P", "prefork", "--concurrency", str(concurrency), "-Q", self.queue,
                   "-n", f"{self.queue}@%h", "--loglevel", "INFO", "--without-gossip",
                   "--without-mingle", "--without-heartbeat", *extra]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the worker did not become ready:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM to the worker's main process only (a warm shutdown), as a process manager
        that signals the main process does; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Whatever is left of the worker's process group, killed."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
        self.kill()


StartWorker = Callable[..., Worker]


@pytest.fixture(scope="module")
def start_worker(redis_broker: RedisServer, module_sink: LocalSink,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartWorker]:
    """Start workers for the module's tests; every one is stopped and killed afterwards."""
    workers: list[Worker] = []

    def start(**options: Any) -> Worker:
        worker = Worker(redis_broker, module_sink, tmp_path_factory.mktemp("worker"),
                        **options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


class Producer:
    """The publishing side: an app on the same broker with the worker's task names, set up
    with its own client and integration."""

    def __init__(self, broker: RedisServer, sink: LocalSink) -> None:
        self.client = Client(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
        self.app = Celery("posthog_celery_producer", broker=broker.url, set_as_current=False)
        self.app.conf.broker_connection_retry_on_startup = True
        register(self.app, WORKER_PREFIX)
        PostHogCelery(self.app, client=self.client)

    def task(self, name: str) -> Any:
        return self.app.tasks[f"{WORKER_PREFIX}.{name}"]

    def close(self) -> None:
        self.app.close()
        self.client.shutdown(timeout=2)


@pytest.fixture(scope="module")
def producer(redis_broker: RedisServer, module_sink: LocalSink) -> Iterator[Producer]:
    made = Producer(redis_broker, module_sink)
    yield made
    made.close()
