"""The client's IP address, derived only as far as the user trusts the proxies in front."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Union

from posthog_integrations.core.options import ConfigurationError, shown

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
TrustedProxies = Union[int, str, Iterable[str]]


class ProxyTrust:
    """Which hops of ``X-Forwarded-For`` to believe.

    ``trusted_proxies`` is either a number of proxies in front of the app (``0``: none, use the
    peer address; ``1``: one load balancer, use the address it saw; a request whose
    ``X-Forwarded-For`` has fewer entries than that gets no address), or proxy addresses and
    networks (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"*"`` for any), as a list or a comma-separated
    string. With networks, the forwarded chain is walked from the peer towards the client and
    the first address that is not a trusted proxy is the client.
    """

    __slots__ = ("_hops", "_networks", "_trust_all")

    def __init__(self, trusted_proxies: TrustedProxies) -> None:
        self._hops: int | None = None
        self._networks: tuple[Network, ...] = ()
        self._trust_all = False
        if isinstance(trusted_proxies, bool):
            raise _invalid(trusted_proxies)
        if isinstance(trusted_proxies, int):
            if trusted_proxies < 0:
                raise _invalid(trusted_proxies)
            self._hops = trusted_proxies
            return
        entries = trusted_proxies.split(",") if isinstance(trusted_proxies, str) else None
        try:
            entries = [_entry_text(entry) for entry in entries or trusted_proxies]
        except TypeError:
            raise _invalid(trusted_proxies) from None
        networks = []
        for entry in filter(None, entries):
            if entry == "*":
                self._trust_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise _invalid(entry) from None
        self._networks = tuple(networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client address for a request from ``peer`` carrying ``forwarded_for``.

        With a number of proxies N, the client is the address the outermost proxy appended:
        the N-th entry of ``forwarded_for`` from the right. A shorter chain means the request
        did not pass every proxy (or one of them did not append), so every entry may be the
        client's own writing and none is used.
        """
        if self._hops == 0:
            return _valid_ip(peer) if peer else None
        hops = [hop.strip() for hop in forwarded_for.split(",")] if forwarded_for else []
        if self._hops is not None:
            return _valid_ip(hops[-self._hops]) if len(hops) >= self._hops else None
        chain = [*hops, peer] if peer else hops
        candidate = chain[0] if chain else ""
        for hop in reversed(chain):
            if not self._trusted(hop):
                candidate = hop
                break
        return _valid_ip(candidate)

    def _trusted(self, address: str) -> bool:
        if self._trust_all:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


def _entry_text(entry: object) -> str:
    """A list entry as text: a string, or an address or network from ``ipaddress``."""
    if isinstance(entry, str):
        return entry.strip()
    if isinstance(entry, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                          ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(entry)
    raise TypeError(type(entry).__name__)


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None  # garbage in a forwarded header is absent, never an error


def _invalid(value: object) -> ConfigurationError:
    return ConfigurationError(
        f"trusted_proxies: expected a number of proxies (0 or more) or IP addresses and networks "
        f"such as '10.0.0.0/8' or '*', got {shown(value)}"
    )
