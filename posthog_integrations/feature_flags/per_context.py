"""One flag snapshot per context and identity, whose read flags ride on the context's events.

A context's scope carries a dict (its sixth member, shared by every child context) from distinct
id to a :class:`ContextFlags`: the one evaluation for that identity, made by the first
``flags()`` or ``aflags()`` and awaited by any other thread or task asking meanwhile. Event
building looks the event's distinct id up there and adds the flags read so far. A context that
never reads flags pays for it an empty dict when it opens and a length check per setter and per
event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from posthog_integrations.core.context import (
    CLIENT,
    DISTINCT_ID,
    FLAGS,
    OWNER,
    SESSION_ID,
    TAGS,
    activate,
    current_scope,
    get_context_distinct_id,
)

from .evaluator import FlagEvaluator, PendingEvaluation
from .snapshot import FlagSnapshot

if TYPE_CHECKING:
    from .client_api import FlagMethods

logger = logging.getLogger("posthog_integrations")

MAX_IDENTITIES = 16  # per context: identify_context() to many ids must not grow it unbounded
_lock = threading.Lock()
_async_warned = False


class ContextFlags:
    """The evaluation of one identity's flags in one context (and its children)."""

    __slots__ = ("client", "future")

    def __init__(self, client: FlagMethods) -> None:
        self.client = client
        self.future: concurrent.futures.Future[FlagSnapshot] = concurrent.futures.Future()

    def event_properties(self) -> dict[str, Any]:
        """``$feature/<key>`` and ``$active_feature_flags`` for the flags read so far."""
        future = self.future
        if not future.done():
            return {}
        return future.result().accessed_event_properties()

    def fill(self, evaluator: FlagEvaluator, pending: PendingEvaluation | FlagSnapshot) -> None:
        """Make the evaluation and publish it; a failure publishes an empty snapshot."""
        snapshot: FlagSnapshot | None = None
        try:
            snapshot = pending if isinstance(pending, FlagSnapshot) else pending.run()
        except Exception:
            logger.warning("evaluating the context's flags failed; they read as "
                           "flag_defaults", exc_info=True)
        finally:
            self.future.set_result(snapshot if snapshot is not None else evaluator.empty())


def _claim(client: FlagMethods) -> tuple[ContextFlags | FlagSnapshot,
                                    PendingEvaluation | FlagSnapshot | None]:
    """This context's evaluation for its identity, and the evaluation to make when the caller
    is the first to ask (else None).

    Outside a context or without an identity, an empty snapshot that nothing caches.
    """
    evaluator: FlagEvaluator = client._flags
    scope = current_scope()
    distinct_id = get_context_distinct_id()
    if scope is None or distinct_id is None:
        return evaluator.empty(distinct_id), None
    if len(scope) > FLAGS:
        cache = scope[FLAGS]
    else:  # a scope an adapter built: give it (and the contexts opened in it) a cache now
        cache = {}
        activate((scope[DISTINCT_ID], scope[SESSION_ID], scope[TAGS], scope[CLIENT],
                  scope[OWNER], cache))
    with _lock:
        entry = cache.get(distinct_id)
        if entry is not None:
            if entry.client is client:
                return entry, None
            # Another client evaluated this identity here: answer without caching.
            return evaluator.evaluate(distinct_id), None
        if len(cache) >= MAX_IDENTITIES:
            del cache[next(iter(cache))]
        entry = cache[distinct_id] = ContextFlags(client)
    return entry, evaluator.prepare(distinct_id)


def context_flags(client: FlagMethods) -> FlagSnapshot:
    """The current context's snapshot, evaluated (blocking) on the first call."""
    entry, pending = _claim(client)
    if isinstance(entry, FlagSnapshot):
        return entry
    if pending is not None:
        if not isinstance(pending, FlagSnapshot):
            _warn_if_in_event_loop()
        entry.fill(client._flags, pending)
    elif not entry.future.done():
        _warn_if_in_event_loop()
    return entry.future.result()


async def acontext_flags(client: FlagMethods) -> FlagSnapshot:
    """:func:`context_flags` without blocking the event loop."""
    entry, pending = _claim(client)
    if isinstance(entry, FlagSnapshot):
        return entry
    if isinstance(pending, FlagSnapshot):
        entry.fill(client._flags, pending)
    elif pending is not None:
        # Made in the executor and published by the worker, so that the tasks waiting for it
        # get their answer even if this task is cancelled meanwhile.
        asyncio.get_running_loop().run_in_executor(None, entry.fill, client._flags, pending)
    if entry.future.done():  # decided without a request (local evaluation): no loop hop
        return entry.future.result()
    return await asyncio.wrap_future(entry.future)


def _warn_if_in_event_loop() -> None:
    global _async_warned
    if _async_warned:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    _async_warned = True
    logger.warning("posthog_integrations.flags() was called in async code and blocks the event "
                   "loop while it asks PostHog for the flags; use `await "
                   "posthog_integrations.aflags()` there")


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
