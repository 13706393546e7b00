"""A client of the in-process app (aiohttp's test server) that speaks GraphQL like a frontend."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from api.web.appkeys import SERVICES_KEY
from tests.helpers.graphql import LOGIN, REFRESH, REGISTER


@dataclass
class Api:
    """A client of the running app that speaks GraphQL over HTTP like a frontend would."""

    client: TestClient[Any, Any]
    app: web.Application

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        **headers: str,
    ) -> tuple[int, dict[str, Any], Any]:
        """One POST /graphql: status, JSON body and headers, whatever they are."""
        hdrs = {"Content-Type": "application/json", **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        resp = await self.client.post("/graphql", json=body, headers=hdrs)
        return resp.status, await resp.json(), resp.headers

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """One POST /graphql that must answer 200; its body (data or errors)."""
        status, body, _ = await self.post(query, variables, token)
        assert status == 200, body
        return body

    async def register(
        self, email: str = "ada@example.com", password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        """A new account, signed in: the token pair."""
        body = await self.gql(REGISTER, {"email": email, "password": password, **extra})
        assert "errors" not in body, body
        return body["data"]["register"]  # type: ignore[no-any-return]

    async def login(
        self, email: str = "ada@example.com", password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        """A sign-in that must succeed: the token pair."""
        body = await self.gql(LOGIN, {"email": email, "password": password, **extra})
        assert "errors" not in body, body
        return body["data"]["login"]  # type: ignore[no-any-return]

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """The whole answer of `refresh` (data or errors)."""
        return await self.gql(REFRESH, {"t": refresh_token})


StartApi = Callable[..., Awaitable[Api]]


async def make_admin(api: Api, email: str = "root@example.com") -> dict[str, Any]:
    """An admin as an operator makes one (create-user --role admin), signed in."""
    services = api.app[SERVICES_KEY]
    await services.accounts.create_user(email, "admin password", roles=("user", "admin"))
    return await api.login(email, "admin password")


class QueryCounter(logging.Handler):
    """Counts SQL statements Tortoise sends (it logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []
        # Statements on `sessions` too (a refresh's), except the revocation list's own reads.
        self.include_sessions = False

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if not text.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            return
        # The revocation poll reads `revocations` once a second in the background: not ours.
        if "revocations" in text:
            return
        on_sessions = '"sessions"' in text or " sessions " in text
        if on_sessions and (
            not self.include_sessions or re.search(r'"(ended_at|access_not_before)">=', text)
        ):
            return
        self.statements.append(text)
