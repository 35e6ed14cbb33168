"""``PostHogCelery``: the producer puts the context in a message header, the worker runs each
task in a fresh context restored from it, reports failures, and flushes before exiting.

Celery's signals are process-wide: they are connected once, and each receiver finds the
integration of the task's app (:data:`registry`).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Union

from celery import Celery, signals
from celery.exceptions import Ignore, Reject, Retry

from posthog_integrations.core.client import Client
from posthog_integrations.core.context import activate, current_scope, restore
from posthog_integrations.core.default_client import default_client
from posthog_integrations.core.notices import Notices
from posthog_integrations.core.options import ConfigurationError

from .header import (
    HEADER,
    NOTHING,
    OPT_OUT,
    Received,
    TagFilter,
    build_header,
    default_tag_filter,
    opted_out,
    parse_header,
    read_header,
)
from .running import Running, running_tasks

logger = logging.getLogger("posthog_integrations")

OPTIONS = frozenset({"propagate", "propagate_tags", "capture_task_events", "capture_failures",
                     "shutdown_timeout"})
"""The options of :class:`PostHogCelery` besides ``client`` (Django's ``POSTHOG["CELERY"]``
takes them in upper case)."""
FAILURE_SOURCE = "celery.task_failure"
END_EVENTS = {"SUCCESS": "celery task succeeded", "FAILURE": "celery task failed",
              "RETRY": "celery task retried"}
PropagateTags = Union[Iterable[str], Callable[[str], bool], None]


class PostHogCelery:
    """PostHog for a Celery app, on both sides: the processes that publish tasks and the
    workers that run them. Set it up where the app is defined, so both import it.

    ``client``: where the tasks' events go (default: the process's default client, looked up
    when used). ``propagate``: False sends no context, and tasks run anonymous.
    ``propagate_tags``: which tags travel; None, every tag but those describing the request
    (``$current_url``, ``$ip``, ...); names, those only; a function of the name, those it
    accepts. ``capture_task_events``: ``celery task started/succeeded/failed/retried`` events
    with ``duration_ms``. ``capture_failures``: a failed task's exception as ``$exception``.
    ``shutdown_timeout``: how long an exiting worker process may spend sending what it queued.
    """

    def __init__(self, app: Celery | None = None, *, client: Client | None = None,
                 propagate: bool = True, propagate_tags: PropagateTags = None,
                 capture_task_events: bool = False, capture_failures: bool = True,
                 shutdown_timeout: float = 5.0) -> None:
        if client is not None and not isinstance(client, Client):  # not echoed: an API key?
            raise ConfigurationError("PostHogCelery(client=...): expected a "
                                     f"posthog_integrations.Client, got {type(client).__name__}")
        for name, value in (("propagate", propagate), ("capture_task_events",
                            capture_task_events), ("capture_failures", capture_failures)):
            if type(value) is not bool:
                raise ConfigurationError(f"PostHogCelery({name}=...) must be True or False, got "
                                         f"{type(value).__name__}")
        if type(shutdown_timeout) not in (int, float) or not math.isfinite(shutdown_timeout) \
                or shutdown_timeout <= 0:
            raise ConfigurationError("PostHogCelery(shutdown_timeout=...) must be a positive "
                                     f"number of seconds, got {shutdown_timeout!r}")
        self._client = client
        self.propagate = propagate
        self._allows = _tag_filter(propagate_tags)
        self.capture_task_events = capture_task_events
        self.capture_failures = capture_failures
        self.shutdown_timeout = float(shutdown_timeout)
        self._notices = Notices()
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> Client:
        """The client the tasks' events go to."""
        return self._client if self._client is not None else default_client.get()

    def init_app(self, app: Celery) -> None:
        """Serve the tasks of ``app`` (it keeps this integration over :meth:`init_every_app`)."""
        registry.add(app, self)

    def init_every_app(self) -> None:
        """Serve the tasks of every Celery app in this process without an integration of its
        own, apps created later included."""
        registry.set_every_app(self)

    # -- the producer --------------------------------------------------------------------------

    def _attach(self, headers: dict[str, Any]) -> None:
        """Put the current context in a message's ``headers``; never raises."""
        nested = headers.get("headers")
        declined = opted_out(headers) or opted_out(nested)
        header = None
        try:
            scope = current_scope()
            if self.propagate and not declined and scope is not None:
                header = self._header_of(scope)
        except Exception:
            self._count("header_failed")
            self._notices.warn("celery header", "the PostHog context could not be put in a "
                               "task's message header; the task is sent without it",
                               exc_info=True)
        if header is None:
            headers.pop(HEADER, None)
            if isinstance(nested, dict):
                nested.pop(HEADER, None)
        else:
            headers[HEADER] = header
        if header is not None or declined:
            if nested is None:
                nested = headers["headers"] = {}
            if isinstance(nested, dict):  # read by the worker as task.request.headers
                if header is not None:
                    nested[HEADER] = header
                if declined:  # retries are published with these: they stay opted out
                    nested[OPT_OUT] = False

    def _header_of(self, scope: Any) -> dict[str, Any] | None:
        built = build_header(scope, self._allows)
        if built.tags_dropped:
            self._count("header_tags_oversize", built.tags_dropped)
        if built.oversize:
            self._count("header_oversize")
            self._notices.warn("celery header oversize", "a task was sent without its PostHog "
                               "context: its distinct id and session alone are over the "
                               "header's size limit")
        return built.header

    def _count(self, reason: str, amount: int = 1) -> None:
        self.client._counters.add(f"context_dropped.{reason}", amount)

    # -- the worker ----------------------------------------------------------------------------

    def _open(self, task: Any, task_id: str) -> None:
        """Install the task's fresh context (at ``task_prerun``)."""
        request = task.request
        eager = bool(getattr(request, "is_eager", False))
        received = self._received(request, eager) if self.propagate else NOTHING
        tags = {**received.tags, "celery_task_name": task.name, "celery_task_id": task_id,
                "celery_retry_count": getattr(request, "retries", None) or 0}
        token = activate((received.distinct_id, received.session_id, tags, self.client, None,
                          {}))
        running_tasks.push(task_id, Running(token, time.monotonic(), self, eager))
        if self.capture_task_events:
            self.client.capture("celery task started")

    def _received(self, request: Any, eager: bool) -> Received:
        """What the task inherits: its message's header, or for an eager task (published by
        nothing) what the caller's context would have sent."""
        if eager:
            try:
                scope = current_scope()
                if scope is None or opted_out(getattr(request, "headers", None)):
                    return NOTHING
                header = self._header_of(scope)
            except Exception:
                self._count("header_failed")
                self._notices.warn("celery eager context", "an eager task could not read its "
                                   "caller's PostHog context; it runs anonymous", exc_info=True)
                return NOTHING
            return NOTHING if header is None else parse_header(header) or NOTHING
        value = read_header(request)
        if value is None:
            return NOTHING
        received = parse_header(value)
        if received is None:
            self._count("header_unreadable")
            self._notices.warn("celery header unreadable", "a task's PostHog context header "
                               "was not readable (sent by a newer version?); the task runs "
                               "anonymous")
            return NOTHING
        return received

    def _close(self, running: Running, task: Any, state: Any) -> None:
        """Leave the task's context (at ``task_postrun``), after its end event if wanted."""
        try:
            if state is None and running.eager:
                state = self._escaping(task)
            event = END_EVENTS.get(state) if isinstance(state, str) else None
            if self.capture_task_events and event is not None:
                duration = round((time.monotonic() - running.started) * 1000, 3)
                self.client.capture(event, properties={"duration_ms": duration})
        finally:
            restore(running.token)

    def _escaping(self, task: Any) -> str | None:
        """The outcome of an eager task whose exception propagates to its caller
        (``task_eager_propagates``): Celery sends no ``task_failure`` then, and ``task_postrun``
        runs while the exception is on its way out, with no state."""
        error = sys.exc_info()[1]
        if isinstance(error, Retry):
            return "RETRY"
        if not isinstance(error, Exception) or isinstance(error, (Ignore, Reject)):
            return None
        self._report_failure(task, error)
        return "FAILURE"

    def _report_failure(self, task: Any, error: BaseException) -> None:
        throws = getattr(task, "throws", None)
        if not self.capture_failures or (throws and isinstance(error, throws)):
            return
        self.client._capture_escaped(error, FAILURE_SOURCE, mechanism="task")


def _tag_filter(propagate_tags: PropagateTags) -> TagFilter:
    if propagate_tags is None:
        return default_tag_filter
    if callable(propagate_tags):
        return _guarded(propagate_tags)
    if isinstance(propagate_tags, (str, bytes)) or not isinstance(propagate_tags, Iterable):
        raise ConfigurationError("PostHogCelery(propagate_tags=...) takes None, a list of tag "
                                 "names or a function of a tag's name, got "
                                 f"{type(propagate_tags).__name__}")
    names = frozenset(propagate_tags)
    if not all(isinstance(name, str) for name in names):
        raise ConfigurationError("PostHogCelery(propagate_tags=...): every tag name must be a "
                                 "string")
    return names.__contains__


def _guarded(accepts: Callable[[str], bool]) -> TagFilter:
    """``accepts``, where an exception means no (logged the first time)."""
    failed = False

    def allows(name: str) -> bool:
        nonlocal failed
        try:
            return bool(accepts(name))
        except Exception:
            if not failed:
                failed = True
                logger.warning("the propagate_tags function raised for tag %r: tags it raises "
                               "for stay out of tasks' headers", name, exc_info=True)
            return False

    return allows


class Registry:
    """Which integration serves which app; the process-wide signal receivers consult it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_app: weakref.WeakKeyDictionary[Celery, PostHogCelery] = \
            weakref.WeakKeyDictionary()
        self.every_app: PostHogCelery | None = None

    def add(self, app: Celery, integration: PostHogCelery) -> None:
        with self._lock:
            if app in self._per_app:
                raise RuntimeError(f"PostHogCelery is already set up on the Celery app "
                                   f"{app.main!r}: set it up once, where the app is defined")
            self._per_app[app] = integration
        _connect_signals()

    def set_every_app(self, integration: PostHogCelery) -> None:
        with self._lock:
            self.every_app = integration
        _connect_signals()

    def for_app(self, app: Any) -> PostHogCelery | None:
        """The integration serving the tasks of ``app``."""
        try:
            own = self._per_app.get(app)
        except TypeError:  # not weak-referenceable: no app of ours
            own = None
        return own if own is not None else self.every_app

    def for_publish(self, task_name: Any) -> PostHogCelery | None:
        """The integration for a task being published: Celery's signal names the task, not
        the app. Most processes have one; otherwise the app that defines the task's name,
        then the one serving every app, then the app set up last."""
        apps: list[tuple[Any, PostHogCelery]] = list(self._per_app.items())
        if not apps:
            return self.every_app
        if len(apps) > 1 or self.every_app is not None:
            for app, integration in apps[::-1]:
                defined = getattr(app, "_tasks", None)  # not app.tasks: that finalizes the app
                if isinstance(defined, Mapping) and task_name in defined:
                    return integration
            if self.every_app is not None:
                return self.every_app
        return apps[-1][1]

    def integrations(self) -> list[PostHogCelery]:
        found = list(self._per_app.values())
        return found if self.every_app is None else [*found, self.every_app]


registry = Registry()
_connected = False
_connect_lock = threading.Lock()


def _connect_signals() -> None:
    global _connected
    with _connect_lock:
        if _connected:
            return
        for signal, receiver in ((signals.before_task_publish, _on_before_task_publish),
                                 (signals.task_prerun, _on_task_prerun),
                                 (signals.task_postrun, _on_task_postrun),
                                 (signals.task_failure, _on_task_failure),
                                 (signals.worker_process_shutdown, _on_process_exit),
                                 (signals.worker_shutdown, _on_process_exit)):
            signal.connect(receiver, weak=False,
                           dispatch_uid=f"posthog_integrations.{receiver.__name__}")
        _connected = True


# The receivers never raise: Celery would log it as the task's trouble, and a publisher's.

def _on_before_task_publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
    if not isinstance(headers, dict):
        return
    try:
        integration = registry.for_publish(sender)
        if integration is not None:
            integration._attach(headers)
    except Exception:
        logger.exception("putting the PostHog context in a task's message failed; the task is "
                         "sent without it")


def _on_task_prerun(sender: Any = None, task_id: Any = None, task: Any = None,
                    **_: Any) -> None:
    task = task if task is not None else sender
    try:
        integration = registry.for_app(getattr(task, "app", None))
        if integration is not None:
            integration._open(task, str(task_id))
    except Exception:
        logger.exception("opening the PostHog context of task %s failed", task_id)


def _on_task_postrun(sender: Any = None, task_id: Any = None, task: Any = None,
                     state: Any = None, **_: Any) -> None:
    running = running_tasks.pop(str(task_id))
    if running is None:
        return
    try:
        running.integration._close(running, task if task is not None else sender, state)
    except Exception:
        logger.exception("closing the PostHog context of task %s failed", task_id)


def _on_task_failure(sender: Any = None, exception: Any = None, **_: Any) -> None:
    if not isinstance(exception, BaseException):
        return
    try:
        integration = registry.for_app(getattr(sender, "app", None))
        if integration is not None:
            integration._report_failure(sender, exception)
    except Exception:
        logger.exception("reporting a failed task to PostHog failed")


def _on_process_exit(**_: Any) -> None:
    """A worker process exits (a prefork child's pool ends it with ``os._exit``, which runs no
    exit handler): send what its clients queued, each within its ``shutdown_timeout``."""
    flushed: set[int] = set()
    for integration in registry.integrations():
        try:
            client = integration.client
            if id(client) not in flushed:
                flushed.add(id(client))
                if not client.flush(integration.shutdown_timeout):
                    logger.warning("a Celery worker process exits with PostHog events not "
                                   "sent within %.1fs", integration.shutdown_timeout)
        except Exception:
            logger.exception("flushing PostHog events as a Celery worker process exits failed")
