"""The tasks every Celery test app registers, under a prefix of its own (``<prefix>.capture``).

Each captures through the module-level API, so an event arriving proves that calls inside a
task reach the integration's client (the default client of these processes has no API key).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject

import posthog_integrations


def register(app: Celery, prefix: str) -> None:
    """Define the test tasks on ``app`` only (not shared with every app Celery makes later),
    named ``<prefix>.<function>``."""

    @app.task(shared=False, name=f"{prefix}.capture")
    def capture(event: str, properties: dict[str, Any] | None = None) -> None:
        posthog_integrations.capture(event, properties={"pid": os.getpid(), **(properties or {})})

    @app.task(shared=False, name=f"{prefix}.tag_and_capture")
    def tag_and_capture(event: str, name: str, value: Any) -> None:
        posthog_integrations.tag(name, value)
        posthog_integrations.identify_context("set-inside-the-task")
        posthog_integrations.capture(event, properties={"pid": os.getpid()})

    @app.task(shared=False, bind=True, name=f"{prefix}.retry_once", max_retries=3)
    def retry_once(self: Task, event: str) -> None:
        posthog_integrations.capture(event, properties={"attempt": self.request.retries})
        if self.request.retries < 1:
            raise self.retry(countdown=0)

    @app.task(shared=False, name=f"{prefix}.fail")
    def fail(message: str) -> None:
        posthog_integrations.capture("about to fail", properties={"message": message})
        raise ValueError(message)

    @app.task(shared=False, name=f"{prefix}.ignore")
    def ignore(event: str) -> None:
        posthog_integrations.capture(event)
        raise Ignore()

    @app.task(shared=False, name=f"{prefix}.reject")
    def reject(event: str) -> None:
        posthog_integrations.capture(event)
        raise Reject("rejected on purpose", requeue=False)

    @app.task(shared=False, name=f"{prefix}.expected_failure", throws=(KeyError,))
    def expected_failure(event: str) -> None:
        posthog_integrations.capture(event)
        raise KeyError(event)

    @app.task(shared=False, name=f"{prefix}.sleep_then_capture")
    def sleep_then_capture(event: str, seconds: float, ready_file: str) -> None:
        posthog_integrations.capture(f"{event} began")
        Path(ready_file).touch()
        time.sleep(seconds)
        posthog_integrations.capture(f"{event} ended")

    @app.task(shared=False, name=f"{prefix}.publish_child")
    def publish_child(event: str, queue: str | None = None) -> None:
        posthog_integrations.tag("parent_tag", "kept")
        app.tasks[f"{prefix}.capture"].apply_async((event,), queue=queue)

    @app.task(shared=False, bind=True, name=f"{prefix}.call_eagerly")
    def call_eagerly(self: Task, event: str) -> None:
        app.tasks[f"{prefix}.capture"].apply((f"{event} inner",))
        posthog_integrations.capture(f"{event} outer")
