"""PostHog analytics and error tracking for Django, Flask and ASGI apps.

Module-level use goes to a default client built on first use from the module settings
(``api_key``, ``host``, ``debug``, ``disabled``, ``sync_mode``), then the environment
(``POSTHOG_API_KEY``, ``POSTHOG_HOST``, ``POSTHOG_DEBUG``, ``POSTHOG_DISABLED``)::

    import posthog_integrations as posthog

    posthog.api_key = "phc_..."
    posthog.capture("order processed", distinct_id="user-1", properties={"total": 42})

With no module setting set and one Flask app set up with ``PostHog(app)``, module-level calls
anywhere in the process (CLI commands, threads, start-up code) use that app's client instead.
Changing a setting later replaces the default client, so late configuration is never ignored.
A setting or ``POSTHOG_*`` variable the client cannot work with never raises here: it is logged
once, and the default client runs disabled, counting each event it refuses in :func:`stats`
under ``invalid_configuration``. :func:`configure` and ``Client(...)`` still raise
:class:`ConfigurationError`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any, cast

from ._version import VERSION
from .core import APIError, Client, ClientOptions, ClientStats, ConfigurationError, Posthog
from .core.binding import bind_context
from .core.context import (
    CLIENT,
    current_scope,
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    new_context,
    scoped,
    set_context_session,
    tag,
    use_default_client,
)
from .core.default_client import SETTINGS, default_client
from .core.off_loop import wait_off_loop
from .feature_flags import FlagSnapshot

__version__ = VERSION
__all__ = [
    "APIError", "Client", "ClientOptions", "ClientStats", "ConfigurationError", "FlagSnapshot",
    "Posthog", "acapture_immediate", "aevaluate_flags", "aflags", "aflush", "alias",
    "aload_flags", "api_key", "ashutdown", "bind_context", "capture", "capture_exception",
    "capture_immediate", "configure", "debug", "disabled", "evaluate_flags",
    "feature_enabled", "flags", "flush", "get_all_flags", "get_client",
    "get_context_distinct_id", "get_context_session_id", "get_feature_flag",
    "get_feature_flag_payload", "get_tags", "group_identify", "host", "identify_context",
    "load_flags", "new_context", "scoped", "set", "set_context_session", "set_once", "shutdown",
    "stats", "sync_mode", "tag",
]

api_key: str | None
host: str | None
debug: bool | None
disabled: bool | None
sync_mode: bool | None
# The five settings above live in the default-client registry (core/default_client.py); the
# module's class below makes them read and write it.


def get_client() -> Client:
    """The default client, built from the module settings on first use.

    With no module setting set, the client of the one Flask app set up with ``PostHog(app)``
    (see :mod:`posthog_integrations.core.default_client`). When the settings are invalid, a
    disabled client that counts what it refuses (see the module docstring); the error is
    logged once.
    """
    return default_client.get()


def _routed_client() -> Client:
    """The client bound to the current context, else the default client."""
    scope = current_scope()
    if scope is not None and scope[CLIENT] is not None:
        return cast(Client, scope[CLIENT])
    return default_client.get()


def configure(**options: Any) -> Client:
    """Replace the default client with one built from ``options`` (any :class:`Client` option)."""
    return default_client.configure(options)


def capture(
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

    ``flags``: a snapshot from :func:`evaluate_flags` whose values ride on the event.
    """
    return _routed_client().capture(
        event, distinct_id=distinct_id, properties=properties, timestamp=timestamp, uuid=uuid,
        groups=groups, disable_geoip=disable_geoip, flags=flags,
    )


def capture_immediate(
    event: str, *, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
    timestamp: Any = None, uuid: Any = None, groups: Mapping[str, Any] | None = None,
    disable_geoip: bool | None = None, flags: FlagSnapshot | None = None, timeout: float = 10.0,
) -> bool:
    """Send ``event`` now, with retries, within ``timeout``; True when it was delivered (see
    :meth:`Client.capture_immediate`)."""
    return _routed_client().capture_immediate(
        event, distinct_id=distinct_id, properties=properties, timestamp=timestamp, uuid=uuid,
        groups=groups, disable_geoip=disable_geoip, flags=flags, timeout=timeout,
    )


async def acapture_immediate(
    event: str, *, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
    timestamp: Any = None, uuid: Any = None, groups: Mapping[str, Any] | None = None,
    disable_geoip: bool | None = None, flags: FlagSnapshot | None = None, timeout: float = 10.0,
) -> bool:
    """:func:`capture_immediate` without blocking the event loop."""
    return await _routed_client().acapture_immediate(
        event, distinct_id=distinct_id, properties=properties, timestamp=timestamp, uuid=uuid,
        groups=groups, disable_geoip=disable_geoip, flags=flags, timeout=timeout,
    )


def evaluate_flags(
    distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None, flag_keys: Iterable[str] | None = None,
) -> FlagSnapshot:
    """Evaluate flags with one request (see :meth:`Client.evaluate_flags`)."""
    return _routed_client().evaluate_flags(
        distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip, flag_keys=flag_keys,
    )


async def aevaluate_flags(
    distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None, flag_keys: Iterable[str] | None = None,
) -> FlagSnapshot:
    """:func:`evaluate_flags` without blocking the event loop."""
    return await _routed_client().aevaluate_flags(
        distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip, flag_keys=flag_keys,
    )


def flags() -> FlagSnapshot:
    """The current context's flags, evaluated once per context and identity (see
    :meth:`Client.flags`); flags read from it ride on the context's later events."""
    return _routed_client().flags()


async def aflags() -> FlagSnapshot:
    """:func:`flags` without blocking the event loop; it fills the same per-context cache."""
    return await _routed_client().aflags()


def load_flags(timeout: float | None = None) -> bool:
    """Load the flag definitions for local evaluation now (see :meth:`Client.load_flags`)."""
    return _routed_client().load_flags(timeout)


async def aload_flags(timeout: float | None = None) -> bool:
    """:func:`load_flags` without blocking the event loop."""
    return await _routed_client().aload_flags(timeout)


def feature_enabled(
    key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None, send_feature_flag_events: bool = True,
) -> bool | None:
    """Whether flag ``key`` is on, evaluated now (see :meth:`Client.feature_enabled`)."""
    return _routed_client().feature_enabled(
        key, distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip, send_feature_flag_events=send_feature_flag_events,
    )


def get_feature_flag(
    key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None, send_feature_flag_events: bool = True,
) -> Any:
    """The value of flag ``key``, evaluated now (see :meth:`Client.get_feature_flag`)."""
    return _routed_client().get_feature_flag(
        key, distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip, send_feature_flag_events=send_feature_flag_events,
    )


def get_feature_flag_payload(
    key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None,
) -> Any:
    """The decoded payload of flag ``key``, evaluated now."""
    return _routed_client().get_feature_flag_payload(
        key, distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip,
    )


def get_all_flags(
    distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
    person_properties: Mapping[str, Any] | None = None,
    group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
    disable_geoip: bool | None = None,
) -> dict[str, Any]:
    """Every flag's value, evaluated now (see :meth:`Client.get_all_flags`)."""
    return _routed_client().get_all_flags(
        distinct_id, groups=groups, person_properties=person_properties,
        group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
        disable_geoip=disable_geoip,
    )


def set(*, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
        timestamp: Any = None, uuid: Any = None) -> str | None:
    """Set person properties (``$set``)."""
    return _routed_client().set(
        distinct_id=distinct_id, properties=properties, timestamp=timestamp, uuid=uuid
    )


def set_once(*, distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
             timestamp: Any = None, uuid: Any = None) -> str | None:
    """Set person properties that are not set yet (``$set_once``)."""
    return _routed_client().set_once(
        distinct_id=distinct_id, properties=properties, timestamp=timestamp, uuid=uuid
    )


def alias(previous_id: Any, distinct_id: Any, *, timestamp: Any = None,
          uuid: Any = None) -> str | None:
    """Link ``previous_id`` to ``distinct_id``."""
    return _routed_client().alias(previous_id, distinct_id, timestamp=timestamp, uuid=uuid)


def group_identify(group_type: str, group_key: Any, properties: Mapping[str, Any] | None = None,
                   *, distinct_id: Any = None, timestamp: Any = None,
                   uuid: Any = None) -> str | None:
    """Set properties of a group."""
    return _routed_client().group_identify(
        group_type, group_key, properties, distinct_id=distinct_id, timestamp=timestamp, uuid=uuid
    )


def capture_exception(exc: BaseException | tuple[Any, Any, Any] | None = None, *,
                      distinct_id: Any = None, properties: Mapping[str, Any] | None = None,
                      level: str | None = None, fingerprint: str | None = None) -> str | None:
    """Capture ``exc`` (default: the exception being handled) as ``$exception``; ``level`` and
    ``fingerprint`` as in :meth:`Client.capture_exception`."""
    return _routed_client().capture_exception(exc, distinct_id=distinct_id, properties=properties,
                                              level=level, fingerprint=fingerprint)


def flush(timeout: float = 10.0) -> bool:
    """Send everything the default client has queued; True when all was delivered in time."""
    return default_client.flush(timeout)


async def aflush(timeout: float = 10.0) -> bool:
    """:func:`flush` without blocking the event loop: the same bound and result."""
    return await wait_off_loop(default_client.flush, timeout)


def stats() -> ClientStats:
    """The default client's counters (see :meth:`Client.stats`)."""
    return get_client().stats()


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and stop the default client (a later module-level call builds a new one).

    An app's client standing in as the default is flushed, not stopped: the app owns it.
    """
    return default_client.shutdown(timeout)


async def ashutdown(timeout: float = 5.0) -> bool:
    """:func:`shutdown` without blocking the event loop: the same bound and result."""
    return await wait_off_loop(default_client.shutdown, timeout)


class _SettingsModule(types.ModuleType):
    """The module settings read and write the default-client registry; changing one after the
    default client was built replaces it."""


def _setting_property(name: str) -> property:
    def read(module: types.ModuleType) -> Any:
        return default_client.setting(name)

    def write(module: types.ModuleType, value: Any) -> None:
        default_client.set_setting(name, value)

    return property(read, write, doc=f"The module setting {name!r} of the default client.")


for _name in SETTINGS:
    setattr(_SettingsModule, _name, _setting_property(_name))
del _name
sys.modules[__name__].__class__ = _SettingsModule
use_default_client(get_client)
