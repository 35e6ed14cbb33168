"""The exception methods of :class:`~posthog_integrations.Client`: ``capture_exception`` and
the capture every integration's boundary uses, with the metadata of PostHog's exception spec.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .code_variables import collector_for
from .context import current_scope
from .events import InvalidEvent, build_event
from .exceptions import (
    captured_uuid,
    exception_list,
    mark_captured,
    normalise_level,
    traceback_here,
    traceback_of,
)
from .storms import HELD_BACK_PROPERTY

if TYPE_CHECKING:
    from .events import EventDefaults
    from .exceptions import InAppRules
    from .hooks import Boundary
    from .notices import Notices
    from .options import ClientOptions
    from .storms import StormLimiter

logger = logging.getLogger("posthog_integrations")

ExceptionInput = Optional[Union[BaseException, tuple[Any, Any, Any]]]
# $exception properties only the library writes: a caller's or a context's values are dropped.
_RESERVED_EXCEPTION_PROPERTIES = ("$exception_source", "$debug_images")


class ExceptionMethods:
    """Mixed into the client, which provides the attributes and the event plumbing below."""

    options: ClientOptions
    _disabled: bool
    _notices: Notices
    _storms: StormLimiter
    _in_app: InAppRules
    _defaults: EventDefaults

    # The client's event plumbing, which these methods share with its other capture methods.
    _recording: Callable[[], bool]
    _refused: Callable[[], str | None]
    _reject: Callable[[str, str], str | None]
    _failed: Callable[[str], str | None]
    _enqueue: Callable[[dict[str, Any]], str | None]

    def capture_exception(self, exc: ExceptionInput = None, *, distinct_id: Any = None,
                          properties: Mapping[str, Any] | None = None, level: str | None = None,
                          fingerprint: str | None = None) -> str | None:
        """Capture ``exc`` (default: the exception being handled) as ``$exception``.

        ``level`` (default ``error``) is one of ``fatal``, ``error``, ``warning``, ``log``,
        ``info``, ``debug``; ``fingerprint``, a non-empty string, groups the event
        (``$exception_fingerprint``). A bad value of either is logged and left for its default.
        ``properties`` never replace ``$exception_list``, ``$exception_level`` or
        ``$exception_source``. Returns the event uuid, or None when there is nothing to
        capture, it was already captured, or it was not accepted.
        """
        if self._disabled and not self._recording():
            return self._refused()
        try:
            # isinstance(exc, BaseException) first: it never reads the object's attributes
            error = exc if isinstance(exc, BaseException) or not isinstance(exc, tuple) else exc[1]
            if error is None:
                error = sys.exc_info()[1]
            if not isinstance(error, BaseException):
                logger.warning("capture_exception() found no exception to capture")
                return None
            return self._capture_error(
                error, mechanism="generic", handled=True, source=None,
                level="error" if level is None else self._typed_level(level),
                distinct_id=distinct_id, properties=properties,
                fingerprint=None if fingerprint is None else self._typed_fingerprint(fingerprint),
            )
        except InvalidEvent as error:
            return self._reject(error.kind, f"capture_exception() refused an event: {error}")
        except Exception:
            return self._failed("capture_exception()")

    def _typed_level(self, level: object) -> str:
        normal = normalise_level(level)
        if normal is None:
            self._notices.warn(
                "exception level", "capture_exception(level=%r): a level is one of fatal, error, "
                "warning, log, info, debug; the event is captured with level='error'",
                _shown(level), counted=False)
            return "error"
        return normal

    def _typed_fingerprint(self, fingerprint: object) -> str | None:
        if isinstance(fingerprint, str) and fingerprint.strip():
            return fingerprint
        self._notices.warn(
            "exception fingerprint", "capture_exception(fingerprint=%r): a fingerprint is a "
            "non-empty string; the event is captured without one", _shown(fingerprint),
            counted=False)
        return None

    def _capture_escaped(self, error: BaseException, source: str | None,
                         properties: Mapping[str, Any] | None = None, *,
                         mechanism: str = "middleware") -> str | None:
        """Report an exception escaping a context, a request or a task (``handled: false``)."""
        if self._disabled and not self._recording():
            return self._refused()
        try:
            return self._capture_error(error, mechanism=mechanism, handled=False,
                                       source=source, level="error", properties=properties)
        except InvalidEvent as error:
            return self._reject(error.kind, f"an escaping exception was not captured: {error}")
        except Exception:
            return self._failed("capturing an escaping exception")

    def _capture_uncaught(self, error: BaseException, boundary: Boundary) -> None:
        try:
            self._capture_error(error, mechanism=boundary.mechanism, handled=False,
                                source=boundary.source, level=boundary.level)
        except InvalidEvent as error:
            self._reject(error.kind, f"an uncaught exception was not captured: {error}")
        except Exception:
            self._failed("capturing an uncaught exception")

    def _capture_error(self, error: BaseException, *, mechanism: str, handled: bool,
                       source: str | None, level: str, distinct_id: Any = None,
                       properties: Mapping[str, Any] | None = None,
                       fingerprint: str | None = None,
                       extra: Mapping[str, Any] | None = None,
                       synthetic_stack: types.TracebackType | None = None) -> str | None:
        """Capture ``error`` as ``$exception`` with the metadata of its capture boundary.

        ``mechanism`` (the outermost entry's ``mechanism.type``), ``handled``, ``source``
        (``$exception_source``, or None to leave it out) and ``level`` (already normalised)
        are the boundary's; ``fingerprint`` is a validated ``$exception_fingerprint``.
        ``extra`` holds further library-built properties (JSON types only);
        ``synthetic_stack`` stands in for the stack of an exception never raised (default: the
        caller's). The caller's ``properties`` and the context's tags never replace what the
        library writes here.
        """
        if captured_uuid(error) is not None:
            logger.debug("%s was already captured", type(error).__name__)
            return None
        held_back = self._storms.admit(error)
        if held_back is None:
            return None
        synthetic: types.TracebackType | None = None
        if traceback_of(error) is None:
            synthetic = synthetic_stack or traceback_here(skip=2)
        entries = exception_list(error, rules=self._in_app, mechanism_type=mechanism,
                                 handled=handled, synthetic_traceback=synthetic,
                                 code_variables=collector_for(
                                     self.options.capture_exception_code_variables))
        exception_properties: dict[str, Any] = dict(extra) if extra else {}
        exception_properties["$exception_list"] = entries
        exception_properties["$exception_level"] = level
        exception_properties["$exception_type"] = entries[0]["type"]
        exception_properties["$exception_message"] = entries[0]["value"]
        if source:
            exception_properties["$exception_source"] = source
        if fingerprint is not None:
            exception_properties["$exception_fingerprint"] = fingerprint
        if held_back:
            exception_properties[HELD_BACK_PROPERTY] = held_back
        caller = properties if isinstance(properties, Mapping) else {}
        event = build_event(
            "$exception", distinct_id=distinct_id, properties=caller,
            library_properties=exception_properties, defaults=self._defaults,
            context=current_scope(),
        )
        merged = event["properties"]
        for reserved in _RESERVED_EXCEPTION_PROPERTIES:
            if reserved in merged and reserved not in exception_properties:
                del merged[reserved]
        uuid = self._enqueue(event)
        if uuid is not None:
            mark_captured(error, uuid)
        return uuid


def _shown(value: object) -> object:
    """``value`` as a warning shows it: a short plain value itself, else its type's name (the
    repr of an arbitrary object could be huge, hold a secret, or raise)."""
    if type(value) in (int, float, bool) or (type(value) is str and len(value) <= 100):
        return value
    return f"<{type(value).__name__}>"
