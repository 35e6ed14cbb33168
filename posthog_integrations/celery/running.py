"""The contexts of the tasks running in this process, opened at ``task_prerun`` and closed at
``task_postrun``, found again by task id (a stack per id: an eager retry runs the same task id
inside itself)."""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from typing import Any, NamedTuple

from posthog_integrations.core.context import Scope

logger = logging.getLogger("posthog_integrations")

MAX_RUNNING = 10_000
"""More open task contexts than any pool runs at once: past it, the oldest are forgotten."""


class Running(NamedTuple):
    token: contextvars.Token[Scope | None]
    started: float  # time.monotonic() at task_prerun
    integration: Any  # the PostHogCelery that opened it
    eager: bool  # run by apply() in the caller's thread


class RunningTasks:
    """Open task contexts by task id; safe from any thread, reset in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[Running]] = {}
        self._overflow_warned = False

    def push(self, task_id: str, running: Running) -> None:
        with self._lock:
            if len(self._by_id) >= MAX_RUNNING and task_id not in self._by_id:
                self._forget_oldest()
            self._by_id.setdefault(task_id, []).append(running)

    def pop(self, task_id: str) -> Running | None:
        with self._lock:
            stack = self._by_id.get(task_id)
            if not stack:
                return None
            running = stack.pop()
            if not stack:
                del self._by_id[task_id]
            return running

    def __len__(self) -> int:
        return len(self._by_id)

    def _forget_oldest(self) -> None:
        del self._by_id[next(iter(self._by_id))]
        if not self._overflow_warned:
            self._overflow_warned = True
            logger.warning("%d PostHog task contexts were opened at task_prerun and never "
                           "closed at task_postrun; the oldest are forgotten", MAX_RUNNING)

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._by_id = {}


running_tasks = RunningTasks()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=running_tasks.reset)
