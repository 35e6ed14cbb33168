"""The process's default client: what module-level calls use outside a context bound to a client.

It is, in this order:

1. built from the module settings (``api_key``, ``host``, ``debug``, ``disabled``,
   ``sync_mode``, and any other option given to ``configure()``) when any of them is set;
2. else the client a framework integration offered (Flask's ``PostHog(app)``), while it is the
   only open client offered: so that a CLI command, a thread or start-up code reaches the app's
   client, as in Django, where the app configures the default client from settings;
3. else built from the environment (``POSTHOG_*``) and the defaults.

A configuration the client cannot work with never raises here: it is logged once and a disabled
client stands in, counting each event it refuses under ``invalid_configuration``.
:func:`configure` still raises :class:`ConfigurationError`.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

from .client import Client
from .options import ClientOptions, ConfigurationError

logger = logging.getLogger("posthog_integrations")

SETTINGS = ("api_key", "host", "debug", "disabled", "sync_mode")
INVALID_CONFIGURATION = "invalid_configuration"


class Offer(NamedTuple):
    """A client a framework integration offered as the default, described for the warning."""

    framework: str
    own_client_hint: str


class DefaultClient:
    """The registry behind the module-level API; one per process (:data:`default_client`).

    Safe to use from any thread. :meth:`get` costs two attribute reads once resolved; any change
    (a setting, a client offered) makes the next call resolve again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: dict[str, Any] = dict.fromkeys(SETTINGS)
        self._extra_options: dict[str, Any] = {}
        self._built: Client | None = None
        # An offered client and how its framework's users reach an app's own client.
        self._offered: weakref.WeakKeyDictionary[Client, Offer] = weakref.WeakKeyDictionary()
        self._current: Client | None = None
        self._current_is_offered = False
        self._several_warned = False

    # -- settings ------------------------------------------------------------------------------

    def setting(self, name: str) -> Any:
        return self._settings[name]

    def set_setting(self, name: str, value: Any) -> None:
        """Change a module setting; the client built from the old ones is shut down."""
        with self._lock:
            self._settings[name] = value
        self.discard()

    def configure(self, options: Mapping[str, Any]) -> Client:
        """Set the module settings in ``options`` and replace the other options (any
        :class:`Client` option), then build the client now. Invalid options raise
        :class:`ConfigurationError` and change nothing."""
        with self._lock:
            settings = {**self._settings, **{name: value for name, value in options.items()
                                             if name in self._settings}}
            extra = {name: value for name, value in options.items() if name not in settings}
        ClientOptions.resolve({**extra, **settings})  # raises before anything changes
        with self._lock:
            self._settings, self._extra_options = settings, extra
        self.discard()
        return self._build(raise_errors=True)

    # -- the client ----------------------------------------------------------------------------

    def get(self) -> Client:
        """The default client, built on first use (see the module docstring for which)."""
        client = self._current
        if client is not None and not (self._current_is_offered and client.closed):
            return client
        return self._resolve()

    def offer(self, client: Client, framework: str, own_client_hint: str) -> None:
        """A framework integration set up with ``client`` offers it as the default, used while
        no module setting is set and it is the only open client offered. Held weakly: an app
        that goes away takes its offer with it. ``framework`` and ``own_client_hint`` (how an
        app's own client is reached) are for the warning when several clients are offered."""
        with self._lock:
            self._offered[client] = Offer(framework, own_client_hint)
            self._current = None
            self._several_warned = False

    def flush(self, timeout: float) -> bool:
        """Flush the default client, if it was ever built or offered."""
        client = self._current if self._current is not None else self._built
        return True if client is None else client.flush(timeout)

    def shutdown(self, timeout: float) -> bool:
        """Shut down the client built from the settings (a later call builds a new one); an
        offered client is flushed, not stopped: its app owns it."""
        with self._lock:
            built, self._built = self._built, None
            current, self._current = self._current, None
        flushed = True if current is None or current is built else current.flush(timeout)
        stopped = True if built is None else built.shutdown(timeout)
        return flushed and stopped

    def discard(self) -> None:
        """Forget the built client (it is shut down); the next call resolves again."""
        with self._lock:
            client, self._built = self._built, None
            self._current = None
        if client is not None:
            client.shutdown(timeout=1.0)

    def _resolve(self) -> Client:
        with self._lock:
            offered = [] if self._configured() else self._open_offered()
            if len(offered) == 1:
                self._current, self._current_is_offered = offered[0], True
                return offered[0]
        client = self._build(several=offered)
        with self._lock:
            if self._built is client:
                self._current, self._current_is_offered = client, False
        return client

    def _configured(self) -> bool:
        return self._extra_options != {} or any(
            value is not None for value in self._settings.values())

    def _open_offered(self) -> list[Client]:
        return [client for client in list(self._offered.keys()) if not client.closed]

    def _build(self, *, raise_errors: bool = False, several: list[Client] | None = None) -> Client:
        with self._lock:
            if self._built is None:
                options = {**self._extra_options, **self._settings}
                try:
                    resolved = ClientOptions.resolve(options)
                except Exception as error:
                    if raise_errors:
                        raise
                    _log_unusable_configuration(error, options.get("api_key"))
                    self._built = Client._refusing(INVALID_CONFIGURATION)
                else:
                    quiet = bool(several) and not resolved.api_key and not resolved.disabled
                    self._built = Client._from_options(resolved, warn_missing_key=not quiet)
            built = self._built
            if several and not self._several_warned and built.disabled and \
                    not built.options.api_key and not built.options.disabled:
                self._several_warned = True
                _warn_several_offered(several, self._offered)
        return built


def _warn_several_offered(clients: list[Client], offers: Mapping[Client, Offer]) -> None:
    found = [offers[client] for client in clients if client in offers]
    logger.warning(
        "%d %s apps with different PostHog clients are set up; outside a request of one of "
        "them, module-level calls use the default client, which has no API key: their events "
        "are not sent. Configure it (posthog_integrations.configure(api_key=...) or "
        "POSTHOG_API_KEY) or use the app's own client (%s)", len(clients),
        "/".join(sorted({offer.framework for offer in found})),
        "; ".join(sorted({offer.own_client_hint for offer in found})))


def _log_unusable_configuration(error: Exception, api_key: object) -> None:
    message = str(error) if isinstance(error, ConfigurationError) else repr(error)
    for key in (api_key, os.environ.get("POSTHOG_API_KEY")):
        if isinstance(key, str) and key.strip():
            message = message.replace(key.strip(), "<api key>")
    logger.error(
        "PostHog is disabled: the configuration is invalid (%s). Module-level calls do nothing "
        "until it is fixed; each refused event is counted in "
        "posthog_integrations.stats().dropped_by_reason[%r]",
        message, INVALID_CONFIGURATION, exc_info=not isinstance(error, ConfigurationError),
    )


default_client = DefaultClient()
"""The process's default client registry."""
