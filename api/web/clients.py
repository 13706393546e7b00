"""Where a request comes from: the socket's address, or X-Forwarded-For from trusted proxies."""

from __future__ import annotations

import re

from aiohttp import web

from api.identity import ClientInfo
from api.networks import TrustedNetworks, parse_address, parse_forwarded


def forwarded_for(request: web.Request) -> list[str]:
    """Every X-Forwarded-For hop, oldest first, across all header lines.

    HAProxy appends its own line after the client's instead of merging: reading only the
    first line would leave a forged one in charge.
    """
    return [
        hop for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")
    ]


def from_proxy(request: web.Request, trusted: TrustedNetworks) -> bool:
    """Whether the socket's peer is a trusted proxy (its connection carries many clients)."""
    return (parse_address(request.remote) if request.remote else None) in trusted


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
        parsed = parse_forwarded(hop)
        if parsed is None:
            # Not an address (a forged or garbled entry): believe nothing past it.
            break
        address = parsed
        if parsed not in trusted:
            break
    return str(address)


MAX_USER_AGENT = 500  # characters, as the sessions table stores it
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable_text(raw: str, limit: int) -> str:
    """A header value as storable text: bytes that are not UTF-8 become U+FFFD, control
    characters go, at most `limit` characters.

    aiohttp keeps undecodable header bytes as lone surrogates, which no database accepts
    (a 500 on every sign-in that sent `User-Agent: curl\\xff`)."""
    try:
        text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        text = raw.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", text)[:limit]


def client_info(request: web.Request, trusted: TrustedNetworks) -> ClientInfo:
    """The client's IP and User-Agent (as storable text)."""
    agent = request.headers.get("User-Agent")
    user_agent = printable_text(agent, MAX_USER_AGENT) if agent else None
    return ClientInfo(ip=client_ip(request, trusted), user_agent=user_agent or None)
