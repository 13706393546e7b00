"""The ceiling: a bare aiohttp handler doing what `{ me { id roles } }` needs, and nothing else.

It parses the same JSON body, verifies the same access token with PyJWT (pinned HS256,
audience, issuer, required claims, `typ` header, `type` claim) and answers the same JSON
as graphgate does for `{ me { id roles } }`. No GraphQL at all: the query text is only
checked to be a string. This is the "aiohttp + PyJWT alone" figure graphgate is measured
against (bench/README.md).

    JWT_SECRET=... python bench/ceiling.py --port 18001

Reads JWT_SECRET, JWT_ISSUER (graphgate), JWT_AUDIENCE (graphgate-clients), JWT_LEEWAY (30)
from the environment, like graphgate. Runs on asyncio's own loop, as graphgate does (it
chose that loop on purpose, bench/reliability/README.md), so that the ratio measures the
application, not the event loop (`--loop uvloop`, when installed, to compare).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import jwt
from aiohttp import web

REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "type", "roles", "auth_time"]
COMPACT = (",", ":")


def _error(message: str, code: str) -> web.Response:
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return web.json_response(body, dumps=lambda d: json.dumps(d, separators=COMPACT))


def make_app(secret: str, issuer: str, audience: str, leeway: int) -> web.Application:
    key = secret.encode("utf-8")

    async def graphql(request: web.Request) -> web.Response:
        try:
            payload: Any = json.loads(await request.read())
        except ValueError:
            return web.json_response({"errors": [{"message": "Invalid JSON"}]}, status=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return web.json_response({"errors": [{"message": "No query"}]}, status=400)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error("Authentication required.", "UNAUTHENTICATED")
        try:
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=["HS256"],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            return _error("The token has expired.", "TOKEN_EXPIRED")
        except jwt.PyJWTError:
            return _error("The token is invalid.", "INVALID_TOKEN")
        claims = decoded["payload"]
        if decoded["header"].get("typ") != "at+jwt" or claims.get("type") != "access":
            return _error("The token has the wrong type.", "INVALID_TOKEN")
        answer = {"data": {"me": {"id": claims["sub"], "roles": claims["roles"]}}}
        return web.Response(
            body=json.dumps(answer, separators=COMPACT).encode(),
            content_type="application/json",
            charset="utf-8",
        )

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.install()
    secret = os.environ.get("JWT_SECRET", "")
    if len(secret.encode()) < 32:
        raise SystemExit("JWT_SECRET (at least 32 bytes) is required")
    app = make_app(
        secret,
        os.environ.get("JWT_ISSUER", "graphgate"),
        os.environ.get("JWT_AUDIENCE", "graphgate-clients"),
        int(os.environ.get("JWT_LEEWAY", "30")),
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
