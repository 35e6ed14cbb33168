"""Capturing an exception that an integration saw handled: a log record, a framework's error
response. The event is ``handled: true`` with the integration's mechanism, source and level."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, cast

from . import client as client_module
from .client import Client
from .context import CLIENT, current_scope
from .default_client import default_client
from .events import InvalidEvent


def routed_client() -> Client:
    """The client bound to the current context, else the default client (as module calls)."""
    scope = current_scope()
    if scope is not None and scope[CLIENT] is not None:
        return cast(Client, scope[CLIENT])
    return default_client.get()


def capture_handled(client: Client, error: BaseException, *, mechanism: str, source: str,
                    level: str, properties: Mapping[str, Any] | None = None,
                    stack: types.TracebackType | None = None) -> str | None:
    """Capture ``error`` once as a handled ``$exception``; its uuid, or None. Never raises.

    ``stack`` is the call site to report when ``error`` was never raised (a log record without
    an exception); the entry is then marked ``synthetic``.
    """
    if client.disabled and client_module._recorder is None:
        return client._refused()
    try:
        return client._capture_error(error, mechanism=mechanism, handled=True, source=source,
                                     level=level, properties=properties, synthetic_stack=stack)
    except InvalidEvent as invalid:
        return client._reject(invalid.kind, f"a handled exception was not captured: {invalid}")
    except Exception:
        return client._failed(f"capturing an exception from {source}")
