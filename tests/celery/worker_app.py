"""The Celery app that ``celery -A tests.celery.worker_app worker`` runs in the tests.

Read from the environment: ``POSTHOG_TEST_BROKER`` (the broker URL), ``POSTHOG_TEST_SINK`` (the
capture endpoint), ``POSTHOG_TEST_FLUSH_INTERVAL`` (seconds between sends: long, to show that
a child's events leave when it exits), ``POSTHOG_TEST_READY_FILE`` (touched when the worker
consumes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery, signals

from posthog_integrations import Client
from posthog_integrations.celery import PostHogCelery
from tests.celery.tasks import register

API_KEY = "phc_test_secret_key_123"
PREFIX = "worker"

app = Celery("posthog_celery_worker", broker=os.environ["POSTHOG_TEST_BROKER"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
)
client = Client(api_key=API_KEY, host=os.environ["POSTHOG_TEST_SINK"], retry_base_delay=0.02,
                flush_interval=float(os.environ.get("POSTHOG_TEST_FLUSH_INTERVAL", "0.2")),
                flush_at=1000)
PostHogCelery(app, client=client, capture_task_events=True, shutdown_timeout=10)
register(app, PREFIX)


@signals.worker_ready.connect
def _say_ready(**_: Any) -> None:
    Path(os.environ["POSTHOG_TEST_READY_FILE"]).touch()
