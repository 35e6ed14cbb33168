"""Framework-neutral request handling shared by every adapter; imports only the core."""

from .options import RequestOptions
from .proxies import ProxyTrust
from .request import (
    DISTINCT_ID_HEADER,
    SESSION_ID_HEADER,
    TRACING_HEADERS,
    RequestInfo,
    sanitize_header,
)
from .scope import RequestContext, RequestTracker, current_request

__all__ = [
    "DISTINCT_ID_HEADER", "SESSION_ID_HEADER", "TRACING_HEADERS", "ProxyTrust", "RequestContext",
    "RequestInfo", "RequestOptions", "RequestTracker", "current_request", "sanitize_header",
]
