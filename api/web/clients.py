"""Where a request comes from: the socket's address, or X-Forwarded-For from trusted proxies."""

from __future__ import annotations

from aiohttp import web

from api.identity import ClientInfo
from api.networks import TrustedNetworks, parse_address


def forwarded_for(request: web.Request) -> list[str]:
    """Every X-Forwarded-For hop, oldest first, across all header lines.

    HAProxy appends its own line after the client's instead of merging: reading only the
    first line would leave a forged one in charge.
    """
    return [
        hop for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")
    ]


def client_ip(request: web.Request, trusted: TrustedNetworks) -> str | None:
    """The client's full IP address; forwarded headers count only from a trusted proxy."""
    peer = parse_address(request.remote) if request.remote else None
    if peer is None:
        return request.remote
    if peer not in trusted:
        return str(peer)
    address = peer
    # Walk from the nearest hop back: the first address not ours is the client.
    for hop in reversed([hop for hop in forwarded_for(request) if hop.strip()]):
        parsed = parse_address(hop)
        if parsed is None:
            # Not an address (a forged or garbled entry): believe nothing past it.
            break
        address = parsed
        if parsed not in trusted:
            break
    return str(address)


def client_info(request: web.Request, trusted: TrustedNetworks) -> ClientInfo:
    """The client's IP and User-Agent."""
    agent = request.headers.get("User-Agent")
    return ClientInfo(ip=client_ip(request, trusted), user_agent=agent[:500] if agent else None)
