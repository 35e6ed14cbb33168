"""What a request tells us, read once from an ASGI scope or a WSGI environ.

Everything here treats the request as untrusted input: header values are sanitized, bytes that
are not UTF-8 count as absent, and nothing raises on a malformed request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple, Optional
from urllib.parse import quote

DISTINCT_ID_HEADER: Final = "X-POSTHOG-DISTINCT-ID"
SESSION_ID_HEADER: Final = "X-POSTHOG-SESSION-ID"
TRACING_HEADERS: Final = (DISTINCT_ID_HEADER, SESSION_ID_HEADER)
"""The headers posthog-js sends to the backend; allow them in your CORS configuration."""

MAX_HEADER_LENGTH: Final = 1000
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What JavaScript writes for a missing id (String(null), String(undefined)): no id at all.
_ABSENT_WORDS: Final = frozenset({"null", "undefined"})
_ABSENT_WORD_LENGTHS: Final = frozenset(map(len, _ABSENT_WORDS))
# Characters a URL path may carry unescaped; anything else is percent-encoded in $current_url.
_URL_SAFE_PATH = re.compile(r"[A-Za-z0-9/._~!$&'()*+,;=:@%-]*")
_PATH_QUOTE_SAFE: Final = "/._~!$&'()*+,;=:@%-"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def sanitize_header(value: Any) -> str | None:
    """A tracing header's value made safe, or None when nothing valid is left.

    Strings only (for a list, the first valid string); control characters and Unicode format
    characters (bidi controls, zero-width characters, the BOM) removed; trimmed; at most 1,000
    characters. Bytes are decoded as UTF-8; bytes that are not UTF-8 are absent, and so are
    ``null`` and ``undefined`` in any case.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif not isinstance(value, str):
        if isinstance(value, (list, tuple)):
            for item in value:
                clean = sanitize_header(item)
                if clean is not None:
                    return clean
        return None
    if not value.isprintable():
        value = _without_invisible(value)
    value = value.strip()[:MAX_HEADER_LENGTH].rstrip()
    if len(value) in _ABSENT_WORD_LENGTHS and value.lower() in _ABSENT_WORDS:
        return None
    return value or None


def _without_invisible(text: str) -> str:
    """``text`` without control (Cc) and format (Cf) characters.

    Only for text that is not printable, so never for the usual header. Control characters go
    by regex; format characters, rarer, are looked up one character at a time, and only when
    something non-printable is still left (a space other than " ", a line separator, a format
    character): the Unicode database is Python's own, so no list goes stale.
    """
    text = _CONTROL_CHARACTERS.sub("", text)
    if text.isprintable():
        return text
    return "".join([c for c in text if c.isprintable() or unicodedata.category(c) != "Cf"])


def _plain_text(value: bytes) -> str | None:
    """A header value for a tag: latin-1 as the HTTP spec has it, control characters removed."""
    text = value.decode("latin-1")
    if not text.isprintable():
        text = _CONTROL_CHARACTERS.sub("", text).strip()
    return text[:MAX_HEADER_LENGTH] or None


def _from_latin1(value: str) -> str | None:
    """Undo PEP 3333's latin-1 decoding of header bytes: the UTF-8 text, or None."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _strip_credentials(host: str) -> str:
    return host.rpartition("@")[2] if "@" in host else host


def _quote_path(path: str) -> str:
    return path if _URL_SAFE_PATH.fullmatch(path) else quote(path, safe=_PATH_QUOTE_SAFE)


TracingIds = tuple[Optional[str], Optional[str]]
"""The distinct id and session id from a request's tracing headers (each None when absent)."""


def tracing_ids_from_asgi(scope: Mapping[str, Any]) -> TracingIds:
    """The sanitized tracing headers of an ASGI scope (a repeated one: its first valid value)."""
    headers = scope.get("headers") or ()
    by_name = dict(headers)
    if len(by_name) == len(headers):  # no header repeated: the common, fast case
        distinct_id = by_name.get(b"x-posthog-distinct-id")
        session_id = by_name.get(b"x-posthog-session-id")
    else:
        distinct_id = [v for n, v in headers if n == b"x-posthog-distinct-id"] or None
        session_id = [v for n, v in headers if n == b"x-posthog-session-id"] or None
    return (
        sanitize_header(distinct_id) if distinct_id else None,
        sanitize_header(session_id) if session_id else None,
    )


def tracing_ids_from_wsgi(environ: Mapping[str, Any]) -> TracingIds:
    """The sanitized tracing headers of a WSGI environ."""
    distinct_id = environ.get("HTTP_X_POSTHOG_DISTINCT_ID")
    session_id = environ.get("HTTP_X_POSTHOG_SESSION_ID")
    # Inlined for the usual header (ASCII, printable): this runs for every request. Only a
    # value as long as "null" or "undefined" pays for the absent-word check.
    if distinct_id:
        if type(distinct_id) is str and distinct_id.isascii() and distinct_id.isprintable():
            distinct_id = distinct_id.strip()[:MAX_HEADER_LENGTH].rstrip()
            if len(distinct_id) in _ABSENT_WORD_LENGTHS and distinct_id.lower() in _ABSENT_WORDS:
                distinct_id = None
        else:
            distinct_id = _from_wsgi_header(distinct_id)
    if session_id:
        if type(session_id) is str and session_id.isascii() and session_id.isprintable():
            session_id = session_id.strip()[:MAX_HEADER_LENGTH].rstrip()
            if len(session_id) in _ABSENT_WORD_LENGTHS and session_id.lower() in _ABSENT_WORDS:
                session_id = None
        else:
            session_id = _from_wsgi_header(session_id)
    return (distinct_id or None, session_id or None)


def _from_wsgi_header(value: Any) -> str | None:
    return sanitize_header(_from_latin1(value) if isinstance(value, str) else value)


def asgi_path(scope: Mapping[str, Any]) -> str:
    """The request path of an ASGI scope, including ``root_path`` exactly once."""
    path: str = scope.get("path") or "/"
    root_path = scope.get("root_path")
    if root_path and not path.startswith(root_path):
        path = root_path + path  # servers before ASGI 2023 left root_path out of path
    return path


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """The request path of a WSGI environ (``SCRIPT_NAME`` + ``PATH_INFO``), as text."""
    path = (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "")
    return (_from_latin1(path) or path) if path else "/"


class RequestInfo(NamedTuple):
    """The facts about one request that events are tagged with, read once and never changed.

    ``route`` is the framework's route template (``/items/{id}``) when it is known as the
    request arrives; otherwise adapters record it on the request context once resolved.
    ``query_string`` is kept as the server gave it (bytes from ASGI, text from WSGI).
    """

    method: str | None
    scheme: str
    host: str
    path: str
    query_string: bytes | str = ""
    user_agent: str | None = None
    peer: str | None = None
    forwarded_for: str | None = None
    distinct_id: str | None = None
    session_id: str | None = None
    route: str | None = None

    def url(self, *, with_query: bool = False) -> str:
        """The absolute URL, with no user:password and, unless asked, no query string."""
        url = f"{self.scheme}://{self.host}{_quote_path(self.path)}"
        query = self.query_string
        if with_query and query:
            return f"{url}?{query.decode('latin-1') if isinstance(query, bytes) else query}"
        return url

    @classmethod
    def from_asgi(cls, scope: Mapping[str, Any]) -> RequestInfo:
        """Read an ASGI ``http`` or ``websocket`` scope (header names are lower-case bytes)."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or ():
            if name in headers and name == b"x-forwarded-for":  # repeated: one chain
                headers[name] += b"," + value
            else:
                headers.setdefault(name, value)
        scheme = scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http")
        user_agent = headers.get(b"user-agent")
        forwarded_for = headers.get(b"x-forwarded-for")
        client = scope.get("client")
        distinct_id, session_id = tracing_ids_from_asgi(scope)
        return cls(
            method=scope.get("method"),
            scheme=scheme,
            host=_asgi_host(headers.get(b"host"), scope.get("server"), scheme),
            path=asgi_path(scope),
            query_string=scope.get("query_string") or b"",
            user_agent=_plain_text(user_agent) if user_agent else None,
            peer=str(client[0]) if client else None,
            forwarded_for=forwarded_for.decode("latin-1") if forwarded_for else None,
            distinct_id=distinct_id,
            session_id=session_id,
        )

    @classmethod
    def from_wsgi(cls, environ: Mapping[str, Any]) -> RequestInfo:
        """Read a WSGI environ (PEP 3333: header values are latin-1 decoded strings)."""
        user_agent = environ.get("HTTP_USER_AGENT")
        scheme = environ.get("wsgi.url_scheme") or "http"
        distinct_id, session_id = tracing_ids_from_wsgi(environ)
        return cls(
            method=environ.get("REQUEST_METHOD"),
            scheme=scheme,
            host=_wsgi_host(environ, scheme),
            path=wsgi_path(environ),
            query_string=environ.get("QUERY_STRING") or "",
            user_agent=sanitize_header(_from_latin1(user_agent)) if user_agent else None,
            peer=environ.get("REMOTE_ADDR") or None,
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
            distinct_id=distinct_id,
            session_id=session_id,
        )


def _asgi_host(header: bytes | None, server: Iterable[Any] | None, scheme: str) -> str:
    if header:
        host = _plain_text(header)
        if host:
            return _strip_credentials(host)
    if server:
        name, port = tuple(server)[:2]
        if port is None or _DEFAULT_PORTS.get(scheme) == port:
            return str(name)
        return f"{name}:{port}"
    return "localhost"


def _wsgi_host(environ: Mapping[str, Any], scheme: str) -> str:
    header = environ.get("HTTP_HOST")
    if header:
        host = sanitize_header(_from_latin1(header))
        if host:
            return _strip_credentials(host)
    name = environ.get("SERVER_NAME") or "localhost"
    port = str(environ.get("SERVER_PORT") or "")
    if not port or str(_DEFAULT_PORTS.get(scheme)) == port:
        return str(name)
    return f"{name}:{port}"
