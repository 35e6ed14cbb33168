"""The PostHog client: public methods composed from options, events, queue, sender and transport."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

from posthog_integrations.feature_flags.client_api import FlagMethods
from posthog_integrations.feature_flags.evaluator import FlagEvaluator
from posthog_integrations.feature_flags.snapshot import FlagSnapshot

from . import context as _context
from .async_lifecycle import AsyncLifecycleMethods
from .binding import bind_context
from .context import DISTINCT_ID, current_scope
from .events import (
    EventDefaults,
    InvalidEvent,
    build_event,
    normalize_distinct_id,
    read_mapping,
    sendable_problem,
)
from .exception_capture import ExceptionMethods
from .exceptions import (
    InAppRules,
)
from .hooks import ExceptHooks
from .immediate import ImmediateMethods
from .notices import Notices
from .options import ClientOptions
from .sender import Sender
from .stats import ClientStats, Counters
from .storms import StormLimiter

logger = logging.getLogger("posthog_integrations")

Event = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
Recorder = Callable[[Event], None]
QUEUE_FULL_WARNING_INTERVAL = 10.0
_missing_key_warned = False
# Set by posthog_integrations.testing: while it is not None, every client, disabled ones too,
# hands each accepted event to it instead of sending it. A module global, so that capturing
# pays a single lookup for it when nothing records.
_recorder: Recorder | None = None


def set_recorder(recorder: Recorder | None) -> None:
    """Route the accepted events of every client to ``recorder`` instead of PostHog (tests)."""
    global _recorder
    _recorder = recorder


class Client(FlagMethods, ExceptionMethods, ImmediateMethods, AsyncLifecycleMethods):
    """Sends events to PostHog from a bounded queue on a background thread.

    Building a client starts no thread and opens no socket; the sender starts on the first event.
    Every public method is safe to call from any thread and never raises into the caller.
    """

    def __init__(self, api_key: str | None = None, host: str | None = None, **options: Any) -> None:
        self._start(ClientOptions.resolve({"api_key": api_key, "host": host, **options}))

    @classmethod
    def _refusing(cls, reason: str) -> Client:
        """A disabled client that counts every event it refuses under ``dropped_by_reason[reason]``.

        Built from the defaults alone, never from the environment, so it cannot fail: the module
        facade stands it in when its configuration is invalid.
        """
        client = cls.__new__(cls)
        client._start(ClientOptions(disabled=True))
        client._refusal = f"dropped.{reason}"
        return client

    @classmethod
    def _from_options(cls, options: ClientOptions, *, warn_missing_key: bool) -> Client:
        """A client with resolved ``options``; without ``warn_missing_key``, the caller says
        itself why a missing API key matters (the module's default client does)."""
        client = cls.__new__(cls)
        client._start(options, warn_missing_key=warn_missing_key)
        return client

    def _start(self, options: ClientOptions, *, warn_missing_key: bool = True) -> None:
        self.options = options
        self._refusal = "dropped.disabled"  # what a disabled client counts each refusal as
        self._counters = Counters()
        self._notices = Notices()
        self._defaults = EventDefaults(self.options.super_properties, self.options.disable_geoip)
        self._disabled = self.options.effective_disabled
        self._closed = False
        # A disabled client never sends, even when it reaches _enqueue as a recording ends.
        self._send = self.options.send and not self._disabled
        self._next_queue_full_warning = 0.0
        self._sender = Sender(self.options, self._counters)
        self._storms = StormLimiter(self.options.exception_rate_limit, self._counters,
                                    self._notices)
        self._in_app = InAppRules(
            os.path.abspath(self.options.project_root or os.getcwd()),
            self.options.in_app_include,
            self.options.in_app_exclude,
        )
        self._hooks: ExceptHooks | None = None
        # Flags are asked of PostHog only by a client that sends (and has a key to send with).
        self._flags = FlagEvaluator(self.options, self.capture, active=self._send)
        if self.options.debug:
            _enable_debug_logging()
        if warn_missing_key and not self.options.api_key and not self.options.disabled:
            _warn_missing_key()
        if self.options.enable_exception_autocapture and not self._disabled:
            self._hooks = ExceptHooks(self._capture_uncaught)
            self._hooks.install()
        self._stop_logging: Callable[[], None] | None = None  # capture_logging's root handler
        if self.options.capture_logging is not None and not self._disabled:
            from posthog_integrations.logging import install_root_handler

            self._stop_logging = install_root_handler(self, self.options.capture_logging)

    def __repr__(self) -> str:
        state = "disabled" if self._disabled else "closed" if self._closed else "active"
        return f"<{type(self).__name__} host={self.options.host!r} {state}>"

    @property
    def disabled(self) -> bool:
        return self._disabled

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

    def capture(
        self,
        event: str,
        *,
        distinct_id: Any = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        uuid: Any = None,
        groups: Mapping[str, Any] | None = None,
        disable_geoip: bool | None = None,
        flags: FlagSnapshot | None = None,
    ) -> str | None:
        """Capture ``event``; return its uuid, or None when it was not accepted.

        ``flags`` (a snapshot from :meth:`evaluate_flags`) adds ``$feature/<key>`` for each of
        its flags and the sorted ``$active_feature_flags``, without a request; ``properties``
        win over them.
        """
        if self._disabled and _recorder is None:
            return self._refused()
        try:
            return self._enqueue(self._capture_event(
                event, distinct_id=distinct_id, properties=properties, timestamp=timestamp,
                uuid=uuid, groups=groups, disable_geoip=disable_geoip, flags=flags))
        except InvalidEvent as error:
            return self._reject(error.kind, f"capture() refused an event: {error}")
        except Exception:
            return self._failed("capture()")

    def _capture_event(self, event: Any, *, distinct_id: Any, properties: Any, timestamp: Any,
                       uuid: Any, groups: Any, disable_geoip: bool | None,
                       flags: Any) -> Event:
        """The event :meth:`capture` sends, built in the current context; raises InvalidEvent."""
        if not isinstance(event, str) or not event:
            got = repr(event) if isinstance(event, str) else type(event).__name__
            raise InvalidEvent("event", f"event name must be a non-empty string, got {got}")
        return build_event(
            event, distinct_id=distinct_id, properties=properties, defaults=self._defaults,
            context=current_scope(), timestamp=timestamp, uuid=uuid, groups=groups,
            disable_geoip=disable_geoip,
            flags=None if flags is None else self._flag_properties(flags),
        )

    def set(self, *, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
            timestamp: Any = None, uuid: Any = None) -> str | None:
        """Set person properties (``$set``). A no-op without a distinct id or properties."""
        return self._person_update("$set", distinct_id, properties, timestamp, uuid)

    def set_once(self, *, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
                 timestamp: Any = None, uuid: Any = None) -> str | None:
        """Set person properties only where they are not set yet (``$set_once``)."""
        return self._person_update("$set_once", distinct_id, properties, timestamp, uuid)

    def alias(self, previous_id: Any, distinct_id: Any, *, timestamp: Any = None,
              uuid: Any = None) -> str | None:
        """Link ``previous_id`` to ``distinct_id`` (``$create_alias``)."""
        if self._disabled and _recorder is None:
            return self._refused()
        try:
            previous, new = normalize_distinct_id(previous_id), normalize_distinct_id(distinct_id)
            if not previous or not new:
                return self._reject("alias", "alias needs both previous_id and distinct_id")
            return self._enqueue(build_event(
                "$create_alias", distinct_id=previous, defaults=self._defaults,
                context=current_scope(), properties={"distinct_id": previous, "alias": new},
                timestamp=timestamp, uuid=uuid,
            ))
        except InvalidEvent as error:
            return self._reject(error.kind, f"alias() refused an event: {error}")
        except Exception:
            return self._failed("alias()")

    def group_identify(self, group_type: str, group_key: Any,
                       properties: Mapping[str, Any] | None = None, *, distinct_id: Any = None,
                       timestamp: Any = None, uuid: Any = None) -> str | None:
        """Set properties of a group (``$groupidentify``)."""
        if self._disabled and _recorder is None:
            return self._refused()
        try:
            if not group_type or group_key is None or group_key == "":
                return self._reject("group",
                                    "group_identify needs a group_type and a group_key")
            group_properties = {
                "$group_type": group_type,
                "$group_key": str(group_key),
                "$group_set": read_mapping(properties, "group properties"),
            }
            return self._enqueue(build_event(
                "$groupidentify", distinct_id=distinct_id or f"${group_type}_{group_key}",
                properties=group_properties, defaults=self._defaults, context=current_scope(),
                timestamp=timestamp, uuid=uuid,
            ))
        except InvalidEvent as error:
            return self._reject(error.kind, f"group_identify() refused an event: {error}")
        except Exception:
            return self._failed("group_identify()")

    def new_context(self, *, fresh: bool = False, capture_exceptions: bool = True,
                    exception_source: str | None = None,
                    capture_exception_code_variables: bool | None = None,
                    ) -> _context.new_context:
        """A context bound to this client (see :func:`posthog_integrations.new_context`)."""
        return _context.new_context(
            fresh=fresh, capture_exceptions=capture_exceptions, client=self,
            exception_source=exception_source,
            capture_exception_code_variables=capture_exception_code_variables)

    def scoped(self, *, fresh: bool = False, capture_exceptions: bool = True,
               capture_exception_code_variables: bool | None = None) -> Callable[[F], F]:
        """Decorate a function to run in a context bound to this client."""
        return _context.scoped(fresh=fresh, capture_exceptions=capture_exceptions, client=self,
                               capture_exception_code_variables=capture_exception_code_variables)

    tag = staticmethod(_context.tag)
    identify_context = staticmethod(_context.identify_context)
    set_context_session = staticmethod(_context.set_context_session)
    get_tags = staticmethod(_context.get_tags)
    get_context_distinct_id = staticmethod(_context.get_context_distinct_id)
    get_context_session_id = staticmethod(_context.get_context_session_id)
    bind_context = staticmethod(bind_context)

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now; block until delivered or ``timeout`` seconds pass."""
        if self._disabled:
            return True
        try:
            return self._sender.flush(timeout)
        except Exception:
            logger.exception("flush() failed")
            return False

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop. Idempotent and bounded by ``timeout``; later captures are refused."""
        self._closed = True
        self._flags.stop()
        if self._hooks is not None:
            self._hooks.uninstall()
            self._hooks = None
        if self._stop_logging is not None:
            self._stop_logging()
        if self._disabled:
            return True
        try:
            return self._sender.shutdown(timeout)
        except Exception:
            logger.exception("shutdown() failed")
            return False

    def stats(self) -> ClientStats:
        """Counters: accepted, queued, sent, retried, failed batches, dropped by reason."""
        return self._counters.snapshot(queued=self._sender.pending)

    def _person_update(self, kind: str, distinct_id: Any, properties: Mapping[str, Any] | None,
                       timestamp: Any, uuid: Any) -> str | None:
        if self._disabled and _recorder is None:
            return self._refused()
        try:
            scope = current_scope()
            person = distinct_id or (scope[DISTINCT_ID] if scope is not None else None)
            updates = read_mapping(properties, f"{kind} properties")
            if not person or not updates:
                logger.debug("%s without a distinct id or properties does nothing", kind)
                return None
            return self._enqueue(build_event(
                kind, distinct_id=person, properties=None, defaults=self._defaults,
                context=scope, timestamp=timestamp, uuid=uuid, top_level={kind: updates},
            ))
        except InvalidEvent as error:
            return self._reject(error.kind, f"{kind} refused an event: {error}")
        except Exception:
            return self._failed(kind)

    def _flag_properties(self, flags: Any) -> dict[str, Any] | None:
        if not isinstance(flags, FlagSnapshot):
            self._notices.warn("flags", "capture(flags=...) takes a snapshot from "
                               "evaluate_flags(), got %s; the event is sent without flags",
                               type(flags).__name__)
            return None
        return flags.event_properties()

    def _enqueue(self, event: Event) -> str | None:
        admitted = self._admit(event)
        if admitted is None:
            return None
        event = admitted
        uuid: str | None = event.get("uuid")
        if not self._record(event):
            if not self._send:
                self._counters.add("taken")
            elif self.options.sync_mode:
                self._sender.send_now([event])
            elif not self._sender.submit(event):
                self._queue_full()
                return None
        if self.options.debug:
            logger.debug("accepted event %r (uuid %s)", event.get("event"), uuid)
        return uuid

    def _admit(self, event: Event) -> Event | None:
        """``event`` as ``before_send`` leaves it, or None when it is dropped (counted)."""
        if self._closed:
            self._drop("shutdown", "the client is shut down; event %r dropped", event)
            return None
        before_send = self.options.before_send
        if before_send is None:
            return event
        uuid_before, timestamp_before = event["uuid"], event["timestamp"]
        try:
            result: Any = before_send(event)
        except Exception:
            logger.warning("before_send raised; event %r dropped", event.get("event"),
                           exc_info=True)
            result = None
        if not isinstance(result, dict):
            self._drop("before_send", None if result is None else "before_send must return a "
                       f"dict or None, got {type(result).__name__}; event %r dropped", event)
            return None
        problem = sendable_problem(result, uuid_before=uuid_before,
                                   timestamp_before=timestamp_before)
        if problem is not None:
            self._counters.add("dropped.before_send")
            self._notices.warn(f"before_send {problem}", "before_send returned an event %s; "
                               "it was dropped (captured as %r)", problem, event.get("event"))
            return None
        return result

    def _record(self, event: Event) -> bool:
        """Hand ``event`` to the tests' recorder, if one records; whether one did."""
        recorder = _recorder
        if recorder is None:
            return False
        recorder(event)
        self._counters.add("taken")
        return True

    def _recording(self) -> bool:
        """Whether tests record events (a disabled client then accepts them too)."""
        return _recorder is not None

    def _refused(self) -> str | None:
        """A disabled client's answer, counted (as ``disabled``, or why it stands in disabled)."""
        self._counters.add(self._refusal)
        return None

    def _queue_full(self) -> None:
        total = self._counters.add("dropped.queue_full")
        now = time.monotonic()
        if now >= self._next_queue_full_warning:
            self._next_queue_full_warning = now + QUEUE_FULL_WARNING_INTERVAL
            logger.warning("event queue is full (max_queue_size=%d): %d events dropped so far",
                           self.options.max_queue_size, total)

    def _drop(self, reason: str, message: str | None, event: Event) -> None:
        self._counters.add(f"dropped.{reason}")
        if message:
            logger.warning(message, event.get("event"))
        else:
            logger.debug("event %r dropped (%s)", event.get("event"), reason)

    def _reject(self, kind: str, message: str) -> str | None:
        """Count an event refused for its input as ``invalid``; one log line per ``kind``."""
        self._counters.add("dropped.invalid")
        self._notices.warn(kind, "%s", message)
        return None

    def _failed(self, what: str) -> str | None:
        """Count an event lost to an unexpected error as ``invalid``, with its traceback."""
        self._counters.add("dropped.invalid")
        self._notices.warn(f"failed {what}", "%s failed; the event was dropped", what,
                           exc_info=True)
        return None


Posthog = Client


def _warn_missing_key() -> None:
    global _missing_key_warned
    if not _missing_key_warned:
        _missing_key_warned = True
        logger.warning("no PostHog API key is configured (set POSTHOG_API_KEY or api_key=...): "
                       "events will not be sent")


def _enable_debug_logging() -> None:
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
