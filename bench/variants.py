"""One small adapter per library under test, so a benchmark is written once for all of them.

A :class:`Variant` builds a client pointed at a capture endpoint, captures, flushes and shuts it
down. Both libraries are configured with their default delivery settings, except
``max_queue_size`` (large enough that nothing is dropped) and gzip, which is on for both, and
ours' exception storm limit, which is off so that ``capture_exception()`` of one kind, over and
over, is measured capturing; :meth:`Variant.make_storm_client` keeps it on (the storm
benchmark), and :meth:`Variant.make_default_client` keeps every default (the burst benchmark).
"""

from __future__ import annotations

import abc
import importlib.metadata
import inspect
from collections.abc import Awaitable, Mapping
from typing import Any, Callable

__all__ = [
    "DISTINCT_ID",
    "EVENT_NAME",
    "FLASK_ROUTE",
    "MAX_QUEUE_SIZE",
    "REQUEST_HEADERS",
    "STARLETTE_ROUTE",
    "CaptureFn",
    "OfficialVariant",
    "OursVariant",
    "Variant",
    "available_variants",
    "build_flask_app",
    "build_starlette_app",
    "variant_named",
]

MAX_QUEUE_SIZE = 200_000
EVENT_NAME = "bench event"
DISTINCT_ID = "user-1"

# A library's own bound ``capture`` method, called as ``fn(event, distinct_id=..., properties=...)``
# (the calling convention both libraries share). Hot loops call it directly, so the adapter adds
# no call layer of its own to what is measured.
CaptureFn = Callable[..., Any]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Variant(abc.ABC):
    """Adapter interface; ``name`` is the short key used in results (``ours``, ``official``)."""

    name = ""
    label = ""
    logger_name = ""

    @abc.abstractmethod
    def make_client(self, url: str, api_key: str) -> Any: ...

    def make_storm_client(self, url: str, api_key: str) -> Any:
        """:meth:`make_client`'s client with the library's own exception storm limit, if any."""
        return self.make_client(url, api_key)

    @abc.abstractmethod
    def make_v1_client(self, url: str, api_key: str) -> Any:
        """:meth:`make_client`'s client in capture v1 mode (``POST /i/v1/analytics/events``)."""

    @abc.abstractmethod
    def make_default_client(self, url: str, api_key: str) -> Any:
        """A client with the library's defaults: only the host and API key are set."""

    def capture(self, client: Any, properties: Mapping[str, Any] | None) -> None:
        """Capture one benchmark event (convenience; hot loops use :meth:`bind_capture`)."""
        self.bind_capture(client)(EVENT_NAME, distinct_id=DISTINCT_ID, properties=properties)

    def bind_capture(self, client: Any) -> CaptureFn:
        """The client's bound capture method (see :data:`CaptureFn`)."""
        method: CaptureFn = client.capture
        return method

    @abc.abstractmethod
    def flush(self, client: Any, timeout: float) -> bool | None:
        """Send what is queued and wait; True/False when the library says whether it drained."""

    @abc.abstractmethod
    def shutdown(self, client: Any, timeout: float) -> None: ...

    def dropped(self, client: Any) -> int | None:
        """Events the client itself reports as dropped, when it keeps such a count."""
        return None

    def drops_by_reason(self, client: Any) -> dict[str, int] | None:
        """The client's own dropped-event counts by reason (nonzero only), when it keeps them."""
        return None

    @abc.abstractmethod
    def context_block(self) -> Callable[[], None]:
        """One request's worth of context work: enter, 5 tags, identify, session, exit."""

    def capture_exception(self, client: Any, error: BaseException) -> None:
        client.capture_exception(error)

    @abc.abstractmethod
    def asgi_middleware(self) -> tuple[Any, dict[str, Any]]:
        """The library's ASGI middleware class and the options it needs besides ``client``."""

    @abc.abstractmethod
    def install_flask(self, app: Any, client: Any) -> None:
        """Set the library's Flask extension up on ``app`` with ``client``."""


class OursVariant(Variant):
    """posthog_integrations.Client."""

    name = "ours"
    logger_name = "posthog_integrations"

    def __init__(self) -> None:
        from posthog_integrations import Client, __version__

        self._client_class = Client
        self.label = f"posthog-integrations {__version__}"

    def make_client(self, url: str, api_key: str) -> Any:
        return self._make(url, api_key, exception_rate_limit=False)

    def make_storm_client(self, url: str, api_key: str) -> Any:
        return self._make(url, api_key)

    def make_v1_client(self, url: str, api_key: str) -> Any:
        client = self._make(url, api_key, exception_rate_limit=False, capture_mode="v1")
        if client.options.capture_mode != "v1":
            raise RuntimeError(f"unexpected client options: {client.options!r}")
        return client

    def _make(self, url: str, api_key: str, **options: Any) -> Any:
        client = self._client_class(api_key, host=url, max_queue_size=MAX_QUEUE_SIZE, gzip=True,
                                    **options)
        if not client.options.gzip or client.options.sync_mode or not client.options.send:
            raise RuntimeError(f"unexpected client options: {client.options!r}")
        return client

    def make_default_client(self, url: str, api_key: str) -> Any:
        return self._client_class(api_key, host=url)

    def flush(self, client: Any, timeout: float) -> bool | None:
        return bool(client.flush(timeout=timeout))

    def shutdown(self, client: Any, timeout: float) -> None:
        client.shutdown(timeout=timeout)

    def dropped(self, client: Any) -> int | None:
        return int(client.stats().dropped)

    def drops_by_reason(self, client: Any) -> dict[str, int] | None:
        counts = client.stats().dropped_by_reason
        return {str(reason): int(count) for reason, count in counts.items() if count}

    def context_block(self) -> Callable[[], None]:
        from posthog_integrations import (
            identify_context,
            new_context,
            set_context_session,
            tag,
        )

        return _context_block(new_context, tag, identify_context, set_context_session)

    def asgi_middleware(self) -> tuple[Any, dict[str, Any]]:
        from posthog_integrations.asgi import PostHogMiddleware

        return PostHogMiddleware, {}

    def install_flask(self, app: Any, client: Any) -> None:
        from posthog_integrations.flask import PostHog

        PostHog(app, client=client)


class OfficialVariant(Variant):
    """posthog.Posthog, the official client (7.x)."""

    name = "official"
    logger_name = "posthog"

    def __init__(self) -> None:
        from posthog import Posthog

        self._client_class = Posthog
        self.label = f"posthog {_version('posthog')}"
        parameters = inspect.signature(Posthog.__init__).parameters
        for option in ("host", "gzip", "max_queue_size"):
            if option not in parameters:
                raise RuntimeError(f"posthog.Posthog takes no {option!r} option")
        capture_parameters = inspect.signature(Posthog.capture).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in capture_parameters.values())
        if not takes_kwargs and "distinct_id" not in capture_parameters:
            raise RuntimeError("posthog.Posthog.capture takes no distinct_id")
        flush_parameters = inspect.signature(Posthog.flush).parameters
        self._flush_timeout_arg = next(
            (n for n in ("timeout_seconds", "timeout") if n in flush_parameters), None
        )

    def make_client(self, url: str, api_key: str) -> Any:
        # No personal API key: no feature-flag definitions are polled, so nothing leaves the
        # machine. Everything else but the queue size and gzip keeps its default.
        return self._client_class(
            api_key, host=url, gzip=True, max_queue_size=MAX_QUEUE_SIZE, personal_api_key=None
        )

    def make_v1_client(self, url: str, api_key: str) -> Any:
        if "capture_mode" not in inspect.signature(self._client_class.__init__).parameters:
            raise RuntimeError(f"{self.label} has no capture_mode option (capture v1)")
        # gzip=True makes v1 compress with gzip when capture_compression is not given.
        return self._client_class(
            api_key, host=url, gzip=True, max_queue_size=MAX_QUEUE_SIZE, personal_api_key=None,
            capture_mode="v1",
        )

    def make_default_client(self, url: str, api_key: str) -> Any:
        return self._client_class(api_key, host=url, personal_api_key=None)

    def flush(self, client: Any, timeout: float) -> bool | None:
        if self._flush_timeout_arg is None:
            client.flush()
        else:
            client.flush(**{self._flush_timeout_arg: timeout})
        return None  # the official flush does not say whether it drained

    def shutdown(self, client: Any, timeout: float) -> None:
        client.shutdown()

    def context_block(self) -> Callable[[], None]:
        import posthog

        return _context_block(
            posthog.new_context, posthog.tag, posthog.identify_context, posthog.set_context_session
        )

    def asgi_middleware(self) -> tuple[Any, dict[str, Any]]:
        from posthog.integrations.asgi import PosthogASGIMiddleware

        return PosthogASGIMiddleware, {}

    def install_flask(self, app: Any, client: Any) -> None:
        from posthog.integrations.flask import PosthogFlaskIntegration

        PosthogFlaskIntegration(app, client=client)


def _context_block(new_context: Callable[[], Any], tag: Callable[[str, Any], None],
                   identify: Callable[[str], None],
                   session: Callable[[str], None]) -> Callable[[], None]:
    def block() -> None:
        with new_context():
            tag("plan", "pro")
            tag("region", "eu")
            tag("route", "/checkout")
            tag("method", "POST")
            tag("tenant", 42)
            identify("user-1")
            session("session-1")

    return block


# A browser-like request to a route with a path parameter, carrying both tracing headers.
STARLETTE_ROUTE = "/items/{item_id}"
FLASK_ROUTE = "/items/<int:item_id>"
REQUEST_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/130.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Accept-Language": "en-GB,en;q=0.9",
    "X-POSTHOG-DISTINCT-ID": "user-1",
    "X-POSTHOG-SESSION-ID": "0192f0c1-7d1e-7cc2-8d5e-2f6a3b9c4d10",
}


def build_starlette_app(variant: Variant | None, client: Any,
                        view: Callable[[Any], Awaitable[Any]] | None = None,
                        middleware_class: Any = None) -> Any:
    """A one-route Starlette app, wrapped the way users add middleware (bare when None).

    ``view`` replaces the route's plain answer; ``middleware_class`` adds a middleware that
    takes no options (with ``variant=None``).
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"item {request.path_params['item_id']}")

    middleware = []
    if variant is not None:
        variant_middleware, options = variant.asgi_middleware()
        middleware.append(Middleware(variant_middleware, client=client, **options))
    elif middleware_class is not None:
        middleware.append(Middleware(middleware_class))
    return Starlette(routes=[Route(STARLETTE_ROUTE, view or item)], middleware=middleware)


def build_flask_app(variant: Variant | None, client: Any) -> Any:
    """A one-route Flask app with the variant's extension set up (bare when None)."""
    from flask import Flask

    app = Flask("bench")

    @app.route(FLASK_ROUTE)
    def item(item_id: int) -> str:
        return f"item {item_id}"

    if variant is not None:
        variant.install_flask(app, client)
    return app


def variant_named(name: str) -> Variant:
    factory = {"ours": OursVariant, "official": OfficialVariant}[name]
    return factory()


def available_variants() -> tuple[list[Variant], dict[str, str]]:
    """The variants that can run here, and why the others cannot (name -> reason)."""
    variants: list[Variant] = []
    missing: dict[str, str] = {}
    for factory in (OursVariant, OfficialVariant):
        try:
            variants.append(factory())
        except ImportError as exc:
            missing[factory.name] = f"not installed ({exc})"
        except Exception as exc:
            missing[factory.name] = f"unusable: {exc!r}"
    return variants, missing
