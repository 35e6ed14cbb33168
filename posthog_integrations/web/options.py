"""The request-level settings every adapter shares, validated when the adapter is configured."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, TypedDict

from posthog_integrations.core.options import ConfigurationError, shown, suggest

from .proxies import ProxyTrust, TrustedProxies

ExtraTags = Callable[[Any], Optional[Mapping[str, Any]]]
TagMap = Callable[[dict[str, Any]], Optional[Mapping[str, Any]]]
RequestFilter = Callable[[Any], bool]
Identify = Callable[[Any], Optional[str]]
FlagInputHook = Callable[[Any], Optional[Mapping[str, Any]]]


class RequestSettings(TypedDict, total=False):
    """The keyword arguments of :class:`RequestOptions`, for adapters that accept them."""

    capture_exceptions: bool
    capture_pageviews: bool
    capture_tracing_headers: bool
    capture_query_string: bool
    exclude_paths: Iterable[str]
    trusted_proxies: TrustedProxies | None
    extra_tags: ExtraTags | None
    tag_map: TagMap | None
    request_filter: RequestFilter | None
    identify: Identify | None
    flag_person_properties: FlagInputHook | None
    flag_groups: FlagInputHook | None


class RequestOptions:
    """How an adapter treats each request.

    - ``capture_exceptions``: report exceptions escaping the request (default True).
    - ``capture_pageviews``: after a successful ``GET`` that returned HTML, capture
      ``$pageview`` (default False).
    - ``capture_tracing_headers``: read ``X-POSTHOG-DISTINCT-ID`` and ``X-POSTHOG-SESSION-ID``
      (default True). They are analytics hints from the browser, never proof of identity.
    - ``capture_query_string``: keep the query string in ``$current_url`` (default False: it
      often carries tokens).
    - ``exclude_paths``: globs such as ``"/health*"``; matching requests pass through untouched.
    - ``trusted_proxies``: set it to tag ``$ip`` (see :class:`ProxyTrust`); unset, no ``$ip``.
    - ``extra_tags(request) -> dict``: more tags for the request's context.
    - ``tag_map(tags) -> dict``: rewrite the request's tags (rename, drop, redact).
    - ``request_filter(request) -> bool``: False means the request passes through untouched.
    - ``identify(request) -> str | None``: the id of the user the app knows (from its session,
      a token, ...). A non-empty result wins over ``X-POSTHOG-DISTINCT-ID``, which then only
      identifies anonymous visitors. Called at most once per request, when its first event is
      captured or its distinct id first read: a request that captures nothing never calls it.
      A hook that raises or returns something else than a string is logged; the header is used.
    - ``flag_person_properties(request) -> dict``: person properties for the flags evaluated
      for the request's user (``flags()``, ``aflags()``, the getters without a distinct id),
      such as ``{"plan": "pro"}``, so that local evaluation can decide flags targeting them.
    - ``flag_groups(request) -> dict``: the request's groups for those flags, group type to
      key, such as ``{"company": tenant_id}``. Both are called at most once per request, when
      its flags are first evaluated; what a call passes explicitly wins. A hook that raises or
      returns something else than a mapping is logged and ignored.

    The hooks receive the framework's own request: the ASGI scope, the WSGI environ, Django's
    ``HttpRequest`` or Flask's ``Request``. A hook that raises is logged and skipped.
    """

    __slots__ = (
        "capture_exceptions", "capture_pageviews", "capture_query_string",
        "capture_tracing_headers", "exclude_paths", "excluded", "extra_tags",
        "flag_groups", "flag_person_properties", "identify", "proxy_trust", "request_filter",
        "tag_map",
    )

    def __init__(
        self,
        *,
        capture_exceptions: bool = True,
        capture_pageviews: bool = False,
        capture_tracing_headers: bool = True,
        capture_query_string: bool = False,
        exclude_paths: Iterable[str] = (),
        trusted_proxies: TrustedProxies | None = None,
        extra_tags: ExtraTags | None = None,
        tag_map: TagMap | None = None,
        request_filter: RequestFilter | None = None,
        identify: Identify | None = None,
        flag_person_properties: FlagInputHook | None = None,
        flag_groups: FlagInputHook | None = None,
    ) -> None:
        self.capture_exceptions = _flag("capture_exceptions", capture_exceptions)
        self.capture_pageviews = _flag("capture_pageviews", capture_pageviews)
        self.capture_tracing_headers = _flag("capture_tracing_headers", capture_tracing_headers)
        self.capture_query_string = _flag("capture_query_string", capture_query_string)
        self.exclude_paths = _globs(exclude_paths)
        self.excluded = _compile_globs(self.exclude_paths)
        self.proxy_trust = None if trusted_proxies is None else ProxyTrust(trusted_proxies)
        self.extra_tags = _hook("extra_tags", extra_tags)
        self.tag_map = _hook("tag_map", tag_map)
        self.request_filter = _hook("request_filter", request_filter)
        self.identify = _hook("identify", identify)
        self.flag_person_properties = _hook("flag_person_properties", flag_person_properties)
        self.flag_groups = _hook("flag_groups", flag_groups)

    @classmethod
    def build(cls, settings: Mapping[str, Any]) -> RequestOptions:
        """Options from keyword settings, naming a misspelt one instead of a bare TypeError."""
        reject_unknown(settings, REQUEST_OPTION_NAMES, "request")
        return cls(**settings)

    def __repr__(self) -> str:
        return (
            f"RequestOptions(capture_exceptions={self.capture_exceptions}, "
            f"capture_pageviews={self.capture_pageviews}, exclude_paths={self.exclude_paths})"
        )


REQUEST_OPTION_NAMES = frozenset(RequestSettings.__annotations__)


def reject_unknown(given: Iterable[str], known: Iterable[str], owner: str) -> None:
    """Raise :class:`ConfigurationError` for the first name in ``given`` not in ``known``,
    naming the closest known one; ``owner`` says what the options were given to."""
    known = frozenset(known)
    for name in given:
        if name not in known:
            raise ConfigurationError(f"unknown {owner} option {name!r}{suggest(name, known)}")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}: expected True or False, got {shown(value)}")
    return value


def _hook(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name}: expected a callable or None, got {shown(value)}")
    return value


def _globs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    try:
        globs = tuple(value)
    except TypeError:
        raise ConfigurationError(
            f"exclude_paths: expected a list of path globs such as '/health*', got {shown(value)}"
        ) from None
    for glob in globs:
        if not isinstance(glob, str) or not glob.startswith(("/", "*")):
            raise ConfigurationError(
                f"exclude_paths: each entry must be a path glob starting with '/' or '*', "
                f"got {shown(glob)}"
            )
    return globs


def _compile_globs(globs: tuple[str, ...]) -> Callable[[str], Any] | None:
    """One regex for all globs, so excluding costs one match whatever the number of globs."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs)).match
