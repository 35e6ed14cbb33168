"""``PostHogHandler``: log records become ``$exception`` events.

A record at or above the handler's level that carries an exception (``logger.exception(...)``,
``exc_info=True``) is captured with ``mechanism.type: logger``, ``handled: true``,
``$exception_source: python.logging``, ``$exception_level`` from the record's level,
``$log_message`` (the record's message with its arguments) and ``$logger_name``. With
``capture_without_exc_info=True``, records without an exception are captured too, as a
``LogMessage`` whose stack is the logging call site (``synthetic: true``).

An exception is captured once, whoever reports it first: when a middleware captured it before
the framework logged it (Django's ``django.request``, Flask's ``Exception on ...``), the record
adds nothing. A record reaching several PostHog handlers is captured once too. Records of the
library's own loggers, and whatever is logged while a handler captures, are never captured, so
that logging cannot loop. Nothing raises out of the handler.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
import weakref
from typing import Any, Callable

from posthog_integrations.core.client import Client
from posthog_integrations.core.handled import capture_handled, routed_client
from posthog_integrations.core.options import ConfigurationError, shown

SOURCE = "python.logging"
LIBRARY_LOGGER = "posthog_integrations"
MAX_MESSAGE_CHARS = 8 * 1024

_library_logger = logging.getLogger(LIBRARY_LOGGER)
_emitting = threading.local()  # set while this thread captures a record: nothing nests
# The LogMessage standing for each record captured without an exception, so that a record seen
# by several handlers is one exception, captured once.
_messages: weakref.WeakKeyDictionary[logging.LogRecord, LogMessage] = weakref.WeakKeyDictionary()
_messages_lock = threading.Lock()
_failure_logged = False


class LogMessage(Exception):
    """Stands for a log record captured without an exception; its message is the record's."""


def exception_level(levelno: int) -> str:
    """The ``$exception_level`` of a record's level (custom levels round down)."""
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class PostHogHandler(logging.Handler):
    """A logging handler that captures records at or above ``level`` as ``$exception`` events.

    ``client``: the client to capture with; by default the one module-level calls use (the
    context's client, else the default client), looked up per record. Records are captured in
    the thread that logs them, with that thread's context (identity, tags, request).
    """

    def __init__(self, level: int | str = logging.ERROR, *, client: Client | None = None,
                 capture_without_exc_info: bool = False) -> None:
        if client is not None and not isinstance(client, Client):
            raise ConfigurationError(f"PostHogHandler(client=...): expected a "
                                     f"posthog_integrations.Client, got {type(client).__name__}")
        if not isinstance(capture_without_exc_info, bool):
            raise ConfigurationError("PostHogHandler(capture_without_exc_info=...) must be True "
                                     f"or False, got {shown(capture_without_exc_info)}")
        super().__init__(level)
        self.client = client
        self.capture_without_exc_info = capture_without_exc_info

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter, then emit without the handler's lock: ``emit`` is thread-safe, and records
        from many threads need not queue behind one lock."""
        passed: object = self.filter(record)  # a bool, or a record from 3.12
        if isinstance(passed, logging.LogRecord):
            record = passed
        if passed:
            self.emit(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_emitting, "active", False):
            return
        _emitting.active = True
        try:
            if _is_library_record(record):
                return
            error = _exception_of(record)
            if error is None and self.capture_without_exc_info:
                error = _message_for(record)
            if error is not None:
                self._capture(self.client if self.client is not None else routed_client(),
                              error, record)
        except Exception:
            _log_failure_once()
        finally:
            _emitting.active = False

    def _capture(self, client: Client, error: BaseException, record: logging.LogRecord) -> None:
        try:
            stack = _call_site(record) if isinstance(error, LogMessage) else None
            properties = {"$log_message": _message(record), "$logger_name": str(record.name)}
            level = exception_level(record.levelno)
        except Exception:
            client._failed("capturing a log record")
            return
        capture_handled(client, error, mechanism="logger", source=SOURCE, level=level,
                        properties=properties, stack=stack)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} ({level})>"


def install_root_handler(client: Client, level: int) -> Callable[[], None]:
    """Add a handler capturing with ``client`` to the root logger (``capture_logging``); return
    the function that removes it."""
    handler = PostHogHandler(level, client=client)
    root = logging.getLogger()
    root.addHandler(handler)
    return lambda: root.removeHandler(handler)


def _is_library_record(record: logging.LogRecord) -> bool:
    name = record.name
    return isinstance(name, str) and (name == LIBRARY_LOGGER or
                                      name.startswith(LIBRARY_LOGGER + "."))


def _exception_of(record: logging.LogRecord) -> BaseException | None:
    exc_info = record.exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and \
            isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the message: the message as written
        message = str(record.msg)
    return message[:MAX_MESSAGE_CHARS]


def _message_for(record: logging.LogRecord) -> LogMessage:
    with _messages_lock:
        error = _messages.get(record)
        if error is None:
            error = _messages[record] = LogMessage(_message(record))
        return error


def _call_site(record: logging.LogRecord) -> types.TracebackType | None:
    """The stack of the logging call, entry point first, when it runs in this thread."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and not _is_call_site(frame, record):
        frame = frame.f_back
    traceback = None
    while frame is not None:
        traceback = types.TracebackType(traceback, frame, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return traceback


def _is_call_site(frame: types.FrameType, record: logging.LogRecord) -> bool:
    return frame.f_lineno == record.lineno and frame.f_code.co_name == record.funcName and \
        frame.f_code.co_filename == record.pathname


def _log_failure_once() -> None:
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        _library_logger.warning("PostHogHandler could not capture a log record (reported once)",
                                exc_info=True)
