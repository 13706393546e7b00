"""Where a request comes from: the socket's address, or X-Forwarded-For from trusted proxies."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from api.auth.sessions import ClientInfo


def _address(raw: str) -> str | None:
    """The hop as a normalised IP address, or None when it is not one."""
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    # A zone (`fe80::1%anything`) can be any length: not something a proxy forwards.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return None
    return str(address)


def client_info(request: web.Request, trusted_proxies: frozenset[str]) -> ClientInfo:
    """The client's IP and User-Agent; forwarded headers count only from a trusted proxy."""
    ip = request.remote
    if ip in trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "")
        # Walk from the nearest hop back: the first address not ours is the client.
        for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
            address = _address(hop)
            if address is None:
                # Not an address (a forged or garbled entry): believe nothing past it.
                break
            ip = address
            if address not in trusted_proxies:
                break
    agent = request.headers.get("User-Agent")
    return ClientInfo(ip=ip, user_agent=agent[:500] if agent else None)
