"""IP addresses and networks as the edge sees them: trusted proxies and rate-limit buckets.

Pure functions (no aiohttp, no auth): settings validate TRUSTED_PROXIES with them, the client
IP is read with them (api/web/clients.py), and the per-IP rate limit keys its counters with them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# One IPv6 customer usually gets a whole /64 (or more): counting per address would give an
# attacker 2**64 fresh rate-limit buckets.
IPV6_RATE_LIMIT_PREFIX = 64


def parse_address(raw: str) -> IPAddress | None:
    """The text as an IP address (IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # A zone (`fe80::1%anything`) can be any length: not something a proxy forwards.
        if address.scope_id:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def parse_forwarded(raw: str) -> IPAddress | None:
    """One X-Forwarded-For entry as an address: bare, with a port (`1.2.3.4:5678`), or
    bracketed IPv6 with or without one (`[2001:db8::1]`, `[2001:db8::1]:443`), as some
    proxies write them; None for anything else."""
    entry = raw.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        return parse_address(host) if ":" in host else None
    host, colon, port = entry.partition(":")
    if colon and ":" not in port:  # one colon: IPv4 and a port (IPv6 has two or more)
        return parse_address(host) if _is_port(":" + port) and "." in host else None
    return parse_address(entry)


def _is_port(text: str) -> bool:
    """`:` and a port number (1 to 65535)."""
    digits = text[1:]
    return (
        text.startswith(":") and digits.isascii() and digits.isdigit() and 0 < int(digits) < 65536
    )


def parse_networks(name: str, entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses and CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`); ValueError naming `name`
    and the entry for anything else (a range with host bits set included: likely a typo)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=True))
        except ValueError:
            raise ValueError(
                f"{name} must list IP addresses or CIDR ranges like 10.0.0.0/8 or "
                f"2001:db8::/32, got {entry!r}"
            ) from None
    return tuple(networks)


class TrustedNetworks:
    """Whether an address belongs to one of the listed networks."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self._networks = tuple(networks)

    def __contains__(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self._networks)

    def __bool__(self) -> bool:
        return bool(self._networks)


def rate_limit_key(ip: str | None) -> str:
    """The bucket per-IP limits count in: the IPv4 address, or the IPv6 address's /64."""
    address = parse_address(ip) if ip else None
    if address is None:
        return ip or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_RATE_LIMIT_PREFIX), strict=False)
        return str(network)
    return str(address)
