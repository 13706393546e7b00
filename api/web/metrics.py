"""The /metrics endpoint over the registry of api/infra/metrics.py."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.aiohttp import make_aiohttp_handler

from api.infra.metrics import Metrics


def metrics_handler(metrics: Metrics, token: str | None) -> Handler:
    """The /metrics endpoint; with a token, scrapers must send `Authorization: Bearer <token>`."""
    serve = make_aiohttp_handler(metrics.exposition_registry())

    async def handler(request: web.Request) -> web.StreamResponse:
        if token:
            sent = request.headers.get("Authorization", "")
            # Constant-time: the comparison must not reveal how much of the token matched.
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return web.Response(
                    status=401,
                    text="401: metrics need a bearer token\n",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return await serve(request)

    return handler
