"""The shop's background work, run by the Celery worker (or in the request, in eager mode)."""

from __future__ import annotations

from typing import Any

import posthog_integrations as posthog

from .celery import app


@app.task
def send_order_confirmation(order: dict[str, Any]) -> None:
    # The email itself would be sent here. The event belongs to whoever placed the order: the
    # task runs in the context of the request that enqueued it.
    posthog.capture("order confirmation sent", properties=order)
