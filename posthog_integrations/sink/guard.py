"""Which requests the sink refuses: other Host names (DNS rebinding) and cross-site browsers."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["cross_site", "host_allowed"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_ALL_INTERFACES = frozenset({"", "0.0.0.0", "::"})


def _split_host(header: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header, the name lowercased and IPv6 in brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 2:
            return None
        name, rest = header[: end + 1], header[end + 1 :]
    else:
        name, colon, port_text = header.partition(":")
        rest = colon + port_text
    if not name:
        return None
    if not rest:
        return name, None
    port_text = rest[1:]
    if rest[0] != ":" or not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        return None
    return name, int(port_text)


def _with_port(header: str) -> tuple[str, int] | None:
    """Like :func:`_split_host`, with HTTP's default port 80 filled in."""
    parsed = _split_host(header)
    if parsed is None:
        return None
    name, port = parsed
    return name, 80 if port is None else port


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return True


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def host_allowed(header: str, bound_host: str, port: int) -> bool:
    """Whether a request's Host header names this sink, bound to ``bound_host``:``port``.

    Loopback names are always accepted, and the bound name when it is not loopback. Bound to
    all interfaces, any address literal and this machine's own name are accepted too. A DNS
    rebinding page sends its own domain name, which none of these match.
    """
    parsed = _with_port(header)
    if parsed is None:
        return False
    name, given_port = parsed
    if given_port != port:
        return False
    if name in _LOOPBACK_NAMES or name == _bracketed(bound_host.lower()):
        return True
    if bound_host in _ALL_INTERFACES:
        return _is_address(name) or name == socket.gethostname().lower()
    return False


def _same_origin(origin: str, host_header: str) -> bool:
    scheme, separator, authority = origin.strip().lower().partition("://")
    if scheme != "http" or not separator:
        return False  # "null", file: pages and https: are other origins
    own = _with_port(host_header)
    return own is not None and _with_port(authority) == own


def cross_site(method: str, host_header: str, origin: str | None, fetch_site: str | None) -> bool:
    """Whether a browser sends this request from another site's page.

    ``Sec-Fetch-Site: cross-site`` is refused for every method; a request that changes
    something (not GET or HEAD) is refused when its ``Origin`` is not this sink's own. SDK
    clients send neither header.
    """
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        return True
    if method in ("GET", "HEAD") or origin is None:
        return False
    return not _same_origin(origin, host_header)
