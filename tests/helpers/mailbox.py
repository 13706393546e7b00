"""Helpers for the account lifecycle tests: read mails the app sent (MAIL_URL=memory://)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from api.clock import Clock, system_clock
from api.infra.mail import Mail, MemoryBackend
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api, StartApi

USER = "id email emailVerified"
REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
VERIFY = f"mutation($t: String!) {{ verifyEmail(token: $t) {{ {USER} }} }}"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }"
CHANGE_EMAIL = "mutation($e: String!, $p: String) { changeEmail(newEmail: $e, password: $p) }"
DELETE = "mutation($p: String) { deleteAccount(password: $p) }"
_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_.~%-]+)")


async def start_with_mailbox(start_api: StartApi, clock: Clock = system_clock, **env: str) -> Api:
    """The real app with the memory mailer."""
    return await start_api(clock=clock, MAIL_URL="memory://", **env)


async def mails(api: Api, to: str | None = None) -> list[Mail]:
    """Every mail delivered so far (after the background queue has drained)."""
    services = api.app[SERVICES_KEY]
    await services.mailer.flush()
    backend = services.mailer.backend
    assert isinstance(backend, MemoryBackend)
    return [mail for mail in backend.outbox if to is None or mail.to == to]


async def last_mail(api: Api, to: str, kind: str | None = None) -> Mail:
    found = [mail for mail in await mails(api, to) if kind is None or mail.kind == kind]
    assert found, f"no {kind or ''} mail to {to}"
    return found[-1]


def token_in(mail: Mail) -> str:
    """The token of the link in a mail."""
    match = _TOKEN.search(mail.text)
    assert match, mail.text
    return unquote(match.group(1))


async def mailed_token(api: Api, to: str, kind: str) -> str:
    return token_in(await last_mail(api, to, kind))


async def gql_ok(api: Api, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The data of an operation that must succeed."""
    body = await api.gql(query, variables, **kw)
    assert "errors" not in body, body
    return body["data"]
