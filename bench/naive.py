"""The naive baseline: strawberry on aiohttp as the tutorials write it.

No parser or validation cache, the default asyncio loop, strawberry's default context (a
dict), and a permission class that reads the Authorization header and decodes the token
with PyJWT inside `has_permission`. The token checks are the same as graphgate's (pinned
HS256, audience, issuer, required claims, `typ` header, `type` claim), and
`{ me { id roles } }` gets the same answer. See bench/README.md.

    JWT_SECRET=... python bench/naive.py --port 18002
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import jwt
import strawberry
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView
from strawberry.permission import BasePermission

SECRET = os.environ.get("JWT_SECRET", "")
ISSUER = os.environ.get("JWT_ISSUER", "graphgate")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "graphgate-clients")
LEEWAY = int(os.environ.get("JWT_LEEWAY", "30"))
REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "type", "roles", "auth_time"]


class IsAuthenticated(BasePermission):
    message = "User is not authenticated"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        request = info.context["request"]
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        token = auth[len("Bearer ") :]
        try:
            if jwt.get_unverified_header(token).get("typ") != "at+jwt":
                return False
            claims = jwt.decode(
                token,
                SECRET,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": REQUIRED},
            )
        except jwt.PyJWTError:
            return False
        if claims.get("type") != "access":
            return False
        info.context["user"] = claims
        return True


@strawberry.type
class User:
    id: strawberry.ID
    roles: list[str]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated])  # type: ignore[untyped-decorator]
    def me(self, info: strawberry.Info) -> User:
        claims = info.context["user"]
        return User(id=strawberry.ID(claims["sub"]), roles=claims["roles"])


schema = strawberry.Schema(query=Query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18002)
    args = parser.parse_args()
    if len(SECRET.encode()) < 32:
        raise SystemExit("JWT_SECRET (at least 32 bytes) is required")
    app = web.Application()
    app.router.add_route("*", "/graphql", GraphQLView(schema=schema))
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
