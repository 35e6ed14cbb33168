"""Where a client's flag definitions come from: the :class:`DefinitionsSource` protocol, the
direct source that polls PostHog itself, and :func:`source_for`, which picks one for a client.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

from posthog_integrations.core.options import ClientOptions
from posthog_integrations.core.transport import Transport

from .fetch import (
    FAILED,
    NOT_MODIFIED,
    QUOTA_LIMITED,
    UNAUTHORIZED,
    UPDATED,
    Fetched,
    fetch_definitions,
)

__all__ = [
    "FAILED", "NOT_MODIFIED", "QUOTA_LIMITED", "UNAUTHORIZED", "UPDATED", "DefinitionsSource",
    "DirectSource", "Fetched", "SourceFactory", "source_for",
]


class DefinitionsSource(Protocol):
    """Gives the poller the definitions, one :meth:`refresh` per poll."""

    def refresh(self) -> Fetched:
        """Poll once; never raises (a failure is a ``"failed"`` outcome)."""

    def close(self) -> None:
        """Release connections; the source is not used after."""


SourceFactory = Callable[[ClientOptions], DefinitionsSource]


class DirectSource:
    """Polls ``{host}/flags/definitions`` itself, over a connection of its own, with the ETag
    of the last definitions it got (dropped after a 401 or 402)."""

    def __init__(self, options: ClientOptions) -> None:
        self._project_key = options.api_key
        self._secret_key = options.secret_key
        self._transport = Transport(options.host, options.api_key, timeout=options.timeout,
                                    gzip=False)
        self._lock = threading.Lock()  # one poll at a time: each sends the ETag the last got
        self._etag: str | None = None

    def __repr__(self) -> str:
        return f"<DirectSource host={self._transport.host!r}>"

    def refresh(self) -> Fetched:
        with self._lock:
            fetched = fetch_definitions(self._transport, project_key=self._project_key,
                                        secret_key=self._secret_key, etag=self._etag)
            if fetched.outcome in (UPDATED, NOT_MODIFIED):
                self._etag = fetched.etag
            elif fetched.outcome in (UNAUTHORIZED, QUOTA_LIMITED):
                self._etag = None
            return fetched

    def close(self) -> None:
        self._transport.close()


def source_for(options: ClientOptions) -> DefinitionsSource:
    """The source a client with ``options`` polls: the copy shared through Redis when
    ``flag_definitions_cache`` is set, else PostHog directly."""
    if not options.flag_definitions_cache:
        return DirectSource(options)
    from .shared import make_shared_source  # needs the optional `redis` package

    transport = Transport(options.host, options.api_key, timeout=options.timeout, gzip=False)

    def fetch(etag: str | None) -> Fetched:
        return fetch_definitions(transport, project_key=options.api_key,
                                 secret_key=options.secret_key, etag=etag)

    try:
        return make_shared_source(options.flag_definitions_cache, fetch,
                                  project_key=options.api_key,
                                  poll_interval=options.poll_interval, host=options.host,
                                  on_close=transport.close)
    except BaseException:
        transport.close()
        raise
