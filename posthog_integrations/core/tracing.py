"""``$trace_id`` and ``$span_id`` from the active OpenTelemetry span, on every event.

OpenTelemetry is never imported here: only when the app has imported its API already is the
current span read, so an app without it pays one dictionary lookup per event. The span lives
in a context variable, so this runs where the event is built: in the capturing thread.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("posthog_integrations")

OTEL_TRACE_MODULE = "opentelemetry.trace"
loaded_module = sys.modules.get  # bound once: the check costs a single call per event
_failure_logged = False
# The last valid span context read and its ids as hex: a span's events share them, and
# formatting them anew for each event would cost as much as finding the span.
_last: tuple[Any, str, str] = (None, "", "")


def add_trace_properties(properties: dict[str, Any], trace_api: Any) -> None:
    """Add the active span's ids to ``properties`` where they hold none (the caller's win).

    ``trace_api`` is the loaded ``opentelemetry.trace`` module. Nothing is added outside a
    valid span, and a failure to read it is logged once and never raised.
    """
    global _failure_logged, _last
    try:
        span_context = trace_api.get_current_span().get_span_context()
        last = _last
        if span_context is not last[0]:
            if not span_context.is_valid:
                return
            last = _last = (span_context, format(span_context.trace_id, "032x"),
                            format(span_context.span_id, "016x"))
        properties.setdefault("$trace_id", last[1])
        properties.setdefault("$span_id", last[2])
    except Exception:
        if not _failure_logged:
            _failure_logged = True
            logger.warning("reading the active OpenTelemetry span failed; events go without "
                           "$trace_id (logged once)", exc_info=True)
