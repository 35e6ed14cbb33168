"""Django REST framework: capture the exceptions DRF turns into 5xx responses.

``REST_FRAMEWORK = {"EXCEPTION_HANDLER": "posthog_integrations.django.drf.exception_handler"}``
wraps DRF's default handler; ``wrap(handler)`` wraps a project's own. When the handler answers
with a 5xx response, the exception is captured once, ``handled: true``, mechanism
``middleware``, ``$exception_source: django_rest_framework.exception_handler``, with the
request's context. When it returns None, DRF re-raises and the middleware captures the
exception as unhandled. DRF itself is imported on the first exception, not with this module.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from django.utils.module_loading import import_string

from posthog_integrations.core.client import Client
from posthog_integrations.core.handled import capture_handled, routed_client
from posthog_integrations.core.options import ConfigurationError, shown
from posthog_integrations.web import current_request

logger = logging.getLogger("posthog_integrations")

SOURCE = "django_rest_framework.exception_handler"
DRF_DEFAULT = "rest_framework.views.exception_handler"
Handler = Callable[[Exception, dict[str, Any]], Any]


def wrap(handler: Handler | str, *, capture_client_errors: bool = False) -> Handler:
    """An exception handler that calls ``handler`` (a callable or its dotted path, imported on
    first use) and captures the exception when the response is a 5xx (with
    ``capture_client_errors``, a 4xx too, at level ``warning``)."""
    if not (callable(handler) or isinstance(handler, str)):
        raise ConfigurationError(f"drf.wrap() takes an exception handler or its dotted path, "
                                 f"got {shown(handler)}")
    if not isinstance(capture_client_errors, bool):
        raise ConfigurationError("drf.wrap(capture_client_errors=...) must be True or False, "
                                 f"got {shown(capture_client_errors)}")
    path = handler if isinstance(handler, str) else None
    resolved: list[Handler] = [] if isinstance(handler, str) else [handler]

    def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
        if not resolved and path is not None:
            resolved.append(import_string(path))
        response = resolved[0](exc, context)
        _report(exc, response, capture_client_errors)
        return response

    return exception_handler


exception_handler = wrap(DRF_DEFAULT)
exception_handler.__doc__ = """DRF's default exception handler, capturing what it turns into a
5xx response (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``)."""


def _report(exc: Exception, response: Any, capture_client_errors: bool) -> None:
    try:
        status = getattr(response, "status_code", None)
        if not isinstance(status, int) or isinstance(status, bool):
            return
        if status >= 500:
            level = "error"
        elif status >= 400 and capture_client_errors:
            level = "warning"
        else:
            return
        request = current_request()
        client: Client
        if request is not None:
            if not request.options.capture_exceptions:
                return
            client = request.client
        else:
            client = routed_client()
        capture_handled(client, exc, mechanism="middleware", source=SOURCE, level=level,
                        properties={"$response_status_code": status})
    except Exception:
        logger.exception("capturing the exception of a DRF error response failed")
