"""One context per request: identity and tags from the request, the client bound, hooks applied.

Adapters translate their framework's lifecycle into three calls: :meth:`RequestTracker.open`
when a request arrives; ``with request:`` around the code that runs for it (entered again for
every stretch of work, such as each chunk of a streamed response), or for a WSGI server
:meth:`RequestContext.install` in a context of its own; and
:meth:`RequestContext.capture_exception` / :meth:`RequestContext.finish` at the end.

Only the tracing headers are read when a request arrives. The request's tags (URL, user agent,
the ``extra_tags`` and ``tag_map`` hooks) are computed when its first event is captured, and the
logged-in user (the ``identify`` hook, or the framework's user) is looked up when its first
event is captured or its distinct id first read, so the many requests that capture nothing cost
a context switch and a header scan, no more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from posthog_integrations.core.client import Client
from posthog_integrations.core.context import (
    OWNER,
    LazyIdentity,
    LazyTags,
    Scope,
    activate,
    current_scope,
    distinct_id_of,
    restore,
    tag,
)
from posthog_integrations.core.default_client import default_client
from posthog_integrations.core.options import ConfigurationError
from posthog_integrations.feature_flags.request_inputs import FlagInputs

from .options import RequestOptions

if TYPE_CHECKING:
    from .request import RequestInfo, TracingIds

logger = logging.getLogger("posthog_integrations")

UserFinder = Callable[[Any], Optional[str]]
"""Finds the id of the user the framework knows for a request (None: anonymous)."""
HOOK_WARNING_INTERVAL = 60.0
REQUEST_DESCRIPTION_TAGS = frozenset({
    "$current_url", "$request_path", "$request_method", "$user_agent", "$ip", "$host",
    "$pathname", "$route", "$response_status_code", "$request_duration_ms",
})
"""The tags and properties the adapters set to describe a request (with every name starting
``REQUEST_TAG_PREFIX``): they say nothing true of work done later for it, such as a task."""
REQUEST_TAG_PREFIX = "$request_"


def describes_request(name: str) -> bool:
    """Whether the tag ``name`` describes the request it was set in (see above)."""
    return name in REQUEST_DESCRIPTION_TAGS or name.startswith(REQUEST_TAG_PREFIX)
_hook_warned_at: dict[str, float] = {}


def current_request() -> RequestContext | None:
    """The request context being handled, if any (adapters use it to add late facts)."""
    scope = current_scope()
    owner = None if scope is None else scope[OWNER]
    return owner if type(owner) is RequestContext else None


class RequestTracker:
    """Opens request contexts for one adapter instance; immutable once built.

    With ``client=None`` each request uses the module's default client as it is at that moment,
    so configuring ``posthog_integrations`` after the middleware was built still applies.
    ``find_user`` is the adapter's way to the framework's logged-in user (Django's
    ``request.user``, Flask-Login's ``current_user``); the ``identify`` option, when set, is
    used instead. Either wins over the tracing header, and runs only when the request's
    identity is first needed.
    """

    __slots__ = ("_client", "find_user", "options", "source")

    def __init__(self, client: Client | None, options: RequestOptions, source: str,
                 find_user: UserFinder | None = None) -> None:
        if client is not None and not isinstance(client, Client):  # not echoed: an API key?
            raise ConfigurationError(f"client: expected a posthog_integrations.Client, got "
                                     f"{type(client).__name__}")
        self._client = client
        self.options = options
        self.source = source
        self.find_user = find_user if options.identify is None else _IdentifyHook(
            options.identify)

    @property
    def client(self) -> Client:
        return self._client if self._client is not None else default_client.get()

    def flush(self, timeout: float) -> bool:
        """Flush this adapter's client (the default client only if it was ever built or offered)."""
        if self._client is not None:
            return self._client.flush(timeout)
        return default_client.flush(timeout)

    def open(self, request: Any, read_path: Callable[[Any], str],
             read_ids: Callable[[Any], TracingIds],
             read_info: Callable[[Any], RequestInfo]) -> RequestContext | None:
        """A context for ``request``, or None when it passes through untouched.

        The readers take the framework's request: ``read_path`` gives the path matched against
        ``exclude_paths``; ``read_ids`` the tracing headers' distinct id and session id, read
        now; ``read_info`` the description of the request, read only when something needs it.
        A request passes through when another adapter instance already tracks it (a mounted
        sub-app, middleware applied twice), when ``exclude_paths`` or ``request_filter`` say
        so, or when setting up the context failed (logged; the request itself goes on).
        """
        parent = current_scope()
        if parent is not None and type(parent[OWNER]) is RequestContext:
            if not parent[OWNER].ended:
                return None  # the request is tracked already
            _warn_stale(parent[OWNER])
            parent = None
        options = self.options
        try:
            if options.excluded is not None and options.excluded(read_path(request)):
                return None
            if options.request_filter is not None and not _run_hook(
                "request_filter", options.request_filter, request, True
            ):
                return None
            distinct_id, session_id = (
                read_ids(request) if options.capture_tracing_headers else (None, None)
            )
            client = self._client if self._client is not None else default_client.get()
            return RequestContext(client, options, self.source, request, read_info,
                                  distinct_id, session_id, parent, self.find_user)
        except Exception:
            logger.exception("could not open the PostHog request context; the request goes on")
            return None


def _warn_stale(stale: RequestContext) -> None:
    """A finished request's state was still current: something outside the adapter kept it."""
    now = time.monotonic()
    if now - _hook_warned_at.get("stale", -HOOK_WARNING_INTERVAL) >= HOOK_WARNING_INTERVAL:
        _hook_warned_at["stale"] = now
        logger.warning("the PostHog context of a finished %s request was still current when a "
                       "new request arrived; it is ignored, the new request starts clean",
                       stale.source)
    else:
        logger.debug("a finished request's context was still current; ignored again")


class _RequestTags(LazyTags):
    """A request's tags, and the description they come from, read on first use.

    Separate from :class:`RequestContext` so that the tags installed in the context do not
    point back at it: no reference cycle, nothing left for the garbage collector per request.
    """

    __slots__ = ("_info", "_parent_tags", "_read_info", "options", "request", "route")

    def __init__(self, request: Any, read_info: Callable[[Any], RequestInfo],
                 options: RequestOptions, parent_tags: Mapping[str, Any] | None) -> None:
        self._tags = None  # LazyTags.__init__, inlined: this runs for every request
        self.route: str | None = None
        self.request = request
        self.options = options
        self._read_info = read_info
        self._parent_tags = parent_tags
        self._info: RequestInfo | None = None

    @property
    def info(self) -> RequestInfo:
        info = self._info
        if info is None:
            info = self._info = self._read_info(self.request)
        return info

    def compute(self) -> dict[str, Any]:
        info, options = self.info, self.options
        tags: dict[str, Any] = {"$current_url": info.url(with_query=options.capture_query_string)}
        if info.method is not None:  # a websocket has no method
            tags["$request_method"] = info.method
        tags["$request_path"] = info.path
        route = self.route or info.route
        if route:
            tags["$route"] = route
        if info.user_agent:
            tags["$user_agent"] = info.user_agent
        if options.proxy_trust is not None:
            ip = options.proxy_trust.client_ip(info.peer, info.forwarded_for)
            if ip:
                tags["$ip"] = ip
        if options.extra_tags is not None:
            tags.update(_run_hook("extra_tags", options.extra_tags, self.request, {}, Mapping))
        if options.tag_map is not None:
            tags = dict(_run_hook("tag_map", options.tag_map, dict(tags), tags, Mapping))
        if self._parent_tags:
            tags = {**self._parent_tags, **tags}
        return tags


class RequestContext:
    """The context of one request. Enter it with ``with``, as many times as work resumes.

    ``request`` is the framework's own request (ASGI scope, WSGI environ, ...), handed to the
    user's hooks; ``info`` is read from it on first use. ``parent`` is the scope current when
    the request arrived: identity and tags missing from the request are inherited from it.
    """

    __slots__ = ("_facts", "_flag_inputs", "_scope", "_token", "client", "ended", "options",
                 "source", "started")

    def __init__(self, client: Client, options: RequestOptions, source: str, request: Any,
                 read_info: Callable[[Any], RequestInfo], distinct_id: str | None,
                 session_id: str | None, parent: Scope | None,
                 find_user: UserFinder | None = None) -> None:
        self.client = client
        self.options = options
        self.source = source
        self.started = time.perf_counter() if options.capture_pageviews else 0.0
        self.ended = False  # see end()
        self._flag_inputs: FlagInputs | bool | None = False  # False: not computed yet
        parent_tags = None
        identity: str | LazyIdentity | None = distinct_id
        if parent is not None:  # a context around the server (tests do this): inherit from it
            parent_tags = parent[2]
            identity = distinct_id if distinct_id else parent[0]  # not `or`: no lookup now
            session_id = session_id or parent[1]
        if find_user is not None:
            identity = RequestIdentity(request, find_user, identity)
        self._facts = facts = _RequestTags(request, read_info, options, parent_tags)
        # The request's own flag cache from the start, so that flags read in a copy of its
        # context (a sync endpoint's thread) ride on what the middleware captures too.
        self._scope: Scope = (identity, session_id, facts, client, None, {})  # owner: see _owned

    @property
    def request(self) -> Any:
        return self._facts.request

    @property
    def distinct_id(self) -> str | None:
        """The distinct id events captured in this request get (its user is looked up now, if
        that has not happened yet)."""
        scope = current_scope()
        if scope is None or scope[OWNER] is not self:
            scope = self._scope  # as last left
        return distinct_id_of(scope)

    @property
    def info(self) -> RequestInfo:
        return self._facts.info

    def flag_inputs(self) -> FlagInputs | None:
        """The groups and person properties the ``flag_groups`` and ``flag_person_properties``
        hooks give this request's flags; None without the hooks. Computed on first use, once."""
        inputs = self._flag_inputs
        if inputs is False:
            options = self.options
            if options.flag_groups is None and options.flag_person_properties is None:
                inputs = None
            else:
                request = self._facts.request
                inputs = FlagInputs(_mapping_hook("flag_groups", options.flag_groups, request),
                                    _mapping_hook("flag_person_properties",
                                                  options.flag_person_properties, request))
            self._flag_inputs = inputs
        return inputs if isinstance(inputs, FlagInputs) else None

    def read_info_now(self, status: int | None = None, content_type: str | None = None) -> None:
        """Read the request's description now, while the framework still holds its request
        (Flask lets go of it before the body is sent, and the page view comes after); and, if
        ``status`` and ``content_type`` make a page view due, its identity too (a user is
        looked up in the framework's request). Call it inside the request's context."""
        self._facts.info  # noqa: B018 - the property caches what it reads
        if self._page_view_due(status, content_type):
            distinct_id_of(current_scope())

    def __enter__(self) -> RequestContext:
        self._token = activate(self._owned())
        return self

    def __exit__(self, *exc_info: object) -> None:
        scope = current_scope()
        if scope is not None:  # keep what the app tagged for when work resumes
            flags = scope[5] if len(scope) > 5 else {}
            self._scope = (scope[0], scope[1], scope[2], scope[3], None, flags)
        restore(self._token)

    def _owned(self) -> Scope:
        """The scope to install: the one kept, owned by this request. The kept one has no
        owner so that this object and its scope do not refer to each other (no cycle)."""
        scope = self._scope
        return (scope[0], scope[1], scope[2], scope[3], self, scope[5] if len(scope) > 5 else {})

    def install(self) -> None:
        """Install this request in the current ``contextvars`` context, for good.

        The alternative to ``with request:`` for a server that calls the app, then pulls its
        body: install it first thing in a copy of the context (``copy_context().run(...)``)
        and run each later step with that copy's ``run``. What the app tags or identifies stays
        for the next step, and nothing of the request is left in the server's own context.
        """
        activate(self._owned())

    def iterate(self, body: Iterable[bytes], run: Callable[..., Any],
                status: Callable[[], int | None],
                finish: Callable[[], None] | None = None) -> Generator[bytes, None, None]:
        """``body`` as the server will pull it, each step run by ``run`` (``Context.run`` of
        the context :meth:`install` was called in), so that events captured while a chunk is
        made carry the request's state.

        An exception there is captured with ``status()`` and re-raised. When the body ends, fails
        or is closed, its ``close()`` runs the same way, then ``finish`` if the body ended.
        Call it inside the request's context: ``iter(body)`` is taken at once.
        """
        chunks = self._pull(iter(body).__next__, getattr(body, "close", None), run, status,
                            finish)
        next(chunks)  # to the first yield, so that close() reaches body.close() even if unread
        return chunks

    def _pull(self, pull: Callable[[], bytes], close: Callable[[], object] | None,
              run: Callable[..., Any], status: Callable[[], int | None],
              finish: Callable[[], None] | None) -> Generator[bytes, None, None]:
        ended = False
        try:
            yield b""  # the priming step of iterate(); never sent
            while True:
                try:
                    chunk = run(pull)
                except StopIteration:
                    ended = True
                    return
                except Exception as error:
                    run(self.capture_exception, error, status())
                    raise
                yield chunk
        finally:
            try:
                if close is not None:
                    run(close)
                if ended and finish is not None:
                    run(finish)
            except Exception as error:
                run(self.capture_exception, error, status())
                raise

    def end(self) -> None:
        """The adapter is done with this request: should its state ever be found current when
        another request arrives, that request ignores it instead of being tracked under it."""
        self.ended = True

    def set_route(self, route: str | None) -> None:
        """Record the route template the framework resolved; events captured after it carry it.

        Cheap while no event was captured yet: the route joins the tags when they are computed.
        Call it inside ``with request:``.
        """
        facts = self._facts
        if route and route != facts.route:
            facts.route = route
            if facts.computed and current_request() is self:
                tag("$route", route)

    def capture_exception(self, error: BaseException, status: int | None = None, *,
                          source: str | None = None) -> None:
        """Report an exception that escaped the request, once, with this request's state.

        ``source`` names the hook that caught it (``$exception_source``) when it is not the
        middleware that opened this request's context (a framework's own hook inside it).
        """
        if not self.options.capture_exceptions or not isinstance(error, Exception):
            return
        properties = None if status is None else {"$response_status_code": status}
        self.client._capture_escaped(error, source or self.source, properties)

    def finish(self, status: int | None, content_type: str | None) -> None:
        """The response was sent: capture ``$pageview`` for a successful HTML ``GET``."""
        if not self.options.capture_pageviews:
            return
        try:
            if not self._page_view_due(status, content_type):
                return
            info = self.info
            properties: dict[str, Any] = {
                "$host": info.host,
                "$pathname": info.path,
                "$response_status_code": status,
                "$request_duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            }
            self.client.capture("$pageview", properties=properties)
        except Exception:
            logger.exception("capturing the request's $pageview failed")

    def _page_view_due(self, status: int | None, content_type: str | None) -> bool:
        return status is not None and 200 <= status < 300 and _is_html(content_type) \
            and self.info.method == "GET"


class RequestIdentity(LazyIdentity):
    """A request's distinct id: the user ``find_user`` finds, else the tracing header's id.

    Looked up when the request's first event is captured or its distinct id first read, so a
    request that captures nothing never loads its user. Holds no reference to the request's
    context (no cycle).
    """

    __slots__ = ("_find_user", "_header", "_request")

    def __init__(self, request: Any, find_user: UserFinder,
                 header: str | LazyIdentity | None) -> None:
        self._state = 0  # LazyIdentity.__init__, inlined: this runs for every request
        self._request = request
        self._find_user = find_user
        self._header = header

    def find(self) -> str | None:
        return self._find_user(self._request) or self.fallback()

    def fallback(self) -> str | None:
        header = self._header
        return header if header is None or isinstance(header, str) else header.resolve()


def identify_lazily(request: Any, find_user: UserFinder) -> None:
    """Let the user ``find_user`` finds for ``request`` win over the current context's
    distinct id, looked up when first needed (for an adapter running inside another's
    request context, such as Django's middleware under the ASGI one)."""
    scope = current_scope()
    if scope is not None:
        identity = RequestIdentity(request, find_user, scope[0])
        if len(scope) > 5:
            activate((identity, scope[1], scope[2], scope[3], scope[4], scope[5]))
        else:
            activate((identity, scope[1], scope[2], scope[3], scope[4]))


class _IdentifyHook:
    """The ``identify`` option as a :data:`UserFinder`: a hook that raises or returns anything
    but a string is logged (at most once a minute) and the tracing header is used."""

    __slots__ = ("hook",)

    def __init__(self, hook: Callable[[Any], Any]) -> None:
        self.hook = hook

    def __call__(self, request: Any) -> str | None:
        found: str | None = _run_hook("identify", self.hook, request, None, str)
        return found


def _mapping_hook(name: str, hook: Callable[[Any], Any] | None,
                  request: Any) -> Mapping[str, Any]:
    """A hook's mapping, with text keys; empty without the hook or when it fails (logged)."""
    if hook is None:
        return {}
    found = _run_hook(name, hook, request, None, Mapping)
    return {} if found is None else {str(key): value for key, value in found.items()}


def _is_html(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.lstrip().lower().startswith(("text/html", "application/xhtml+xml"))


def _run_hook(name: str, hook: Callable[[Any], Any], argument: Any, fallback: Any,
              expected: type | None = None) -> Any:
    """Call a user hook; if it raises or returns the wrong type, log it and use ``fallback``.

    The traceback is logged at most once a minute per hook, so a broken hook cannot flood logs.
    """
    try:
        result = hook(argument)
        if expected is None or isinstance(result, expected):
            return result
        if result is None:
            return fallback
        raise TypeError(f"expected a {expected.__name__}, got {type(result).__name__}")
    except Exception:
        now = time.monotonic()
        if now - _hook_warned_at.get(name, -HOOK_WARNING_INTERVAL) >= HOOK_WARNING_INTERVAL:
            _hook_warned_at[name] = now
            logger.warning("the %s hook raised; the request goes on without it", name,
                           exc_info=True)
        else:
            logger.debug("the %s hook raised again", name)
        return fallback
