"""End to end: a Django view's Celery tasks run in a real prefork worker as the visitor.

gunicorn serves ``tests/e2e/django_celery_project.py``, whose ``POSTHOG["CELERY"]`` binds the
integration from settings, in the web process and in a real ``celery worker -P prefork`` (set
up by Celery's Django fixup from the same settings), with a real ``redis-server`` as the
broker. A logged-in visitor's request enqueues a task that captures an event and one that
fails: both arrive at the local capture endpoint with the request's distinct id, session and
allowed tag, and without the tags that describe the request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.e2e.servers import ROOT, free_port, serve
from tests.redis_server import RedisServer, redis_server_executable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="gunicorn and the prefork pool: tested where deployed")

PROJECT = "tests.e2e.django_celery_project"
USER_ID = "42"
SESSION = "session-of-42"
ARRIVAL_TIMEOUT = 30.0  # the worker starts, runs both tasks and sends: seconds, on a busy box
STOP_TIMEOUT = 15.0
REQUEST_TAGS = ("$current_url", "$request_path", "$request_method", "$user_agent", "$ip",
                "$host", "$pathname", "$route")


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    pytest.importorskip("celery")
    with RedisServer(redis_server_executable()) as server:
        yield server


@pytest.fixture
def worker(broker: RedisServer, sink: LocalSink) -> Iterator[list[str]]:
    """A prefork worker of the project; yields the lines it prints, as it prints them."""
    printed: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", PROJECT, "worker", "-P", "prefork",
         "--concurrency", "2", "--loglevel", "warning", "--without-mingle", "--without-gossip",
         "--without-heartbeat"],
        cwd=ROOT, env=project_env(broker, sink), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout is not None
    reader = threading.Thread(target=printed.extend, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        yield printed
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: its children flush and exit
        try:
            process.wait(timeout=STOP_TIMEOUT)
        finally:
            kill_session(process.pid)  # whatever is left of it, its pool children too
            reader.join(timeout=STOP_TIMEOUT)
            process.stdout.close()


def project_env(broker: RedisServer, sink: LocalSink) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("POSTHOG_", "CELERY_"))}
    return {**env, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": PROJECT,
            "CELERY_BROKER_URL": broker.url, "POSTHOG_API_KEY": API_KEY,
            "POSTHOG_HOST": sink.url}


def kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def place_order(port: int, order_id: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", f"/orders/{order_id}/", body=b"", headers={
            "X-Test-User": USER_ID, "X-PostHog-Session-Id": SESSION,
            # the logged-in user wins over the browser's anonymous id
            "X-PostHog-Distinct-Id": "anonymous-browser", "User-Agent": "e2e-browser"})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer
    finally:
        connection.close()


def wait_for(sink: LocalSink, *names: str) -> None:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while not all(sink.events(event=name) for name in names):
        if time.monotonic() > deadline:
            return  # the assertions say what is missing
        time.sleep(0.1)


def test_a_views_tasks_and_their_failure_arrive_as_the_visitor(
        sink: LocalSink, broker: RedisServer, worker: list[str]) -> None:
    port = free_port()
    command = ["gunicorn", f"{PROJECT}:application", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--worker-class", "sync", "--log-level", "warning",
               "--graceful-timeout", "5"]
    with serve(command, port, project_env(broker, sink), ready_timeout=30):
        answer = place_order(port, 7)
    wait_for(sink, "order confirmed", "$exception")

    [placed] = sink.events(event="order placed")
    assert placed["distinct_id"] == USER_ID
    assert placed["properties"]["$current_url"].endswith("/orders/7/")  # the request's own

    confirmed = sink.events(event="order confirmed")
    assert len(confirmed) == 1, "".join(worker)
    [event] = confirmed
    properties = event["properties"]
    assert event["distinct_id"] == USER_ID
    assert properties["$session_id"] == SESSION
    assert properties["order_id"] == 7
    assert properties["task_pid"] != answer["web_pid"]  # run by the worker, not eagerly
    assert properties["plan"] == "pro"
    assert "cart_note" not in properties  # not in PROPAGATE_TAGS
    assert [tag for tag in REQUEST_TAGS if tag in properties] == []
    assert properties["celery_task_name"] == f"{PROJECT}.confirm_order"
    assert properties["celery_task_id"]

    failures = sink.events(event="$exception")
    assert len(failures) == 1, "".join(worker)  # captured once, by the worker
    [failure] = failures
    properties = failure["properties"]
    assert failure["distinct_id"] == USER_ID
    assert properties["$session_id"] == SESSION
    assert properties["$exception_source"] == "celery.task_failure"
    assert properties["plan"] == "pro"
    assert [tag for tag in REQUEST_TAGS if tag in properties] == []
    assert properties["celery_task_name"] == f"{PROJECT}.charge_card"
    [error] = properties["$exception_list"]
    assert (error["type"], error["value"]) == ("RuntimeError", "card declined for order 7")
    assert (error["mechanism"]["type"], error["mechanism"]["handled"]) == ("task", False)
