"""Brute force: per-email and per-IP limits, aliased copies in one request, the owner's way in."""

from __future__ import annotations

from typing import Any

from api.db.models import AuditEvent, Session
from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import LOGIN, REFRESH, REGISTER, code

OWNER_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"


def aliased_logins(email: str, passwords: list[str]) -> str:
    fields = " ".join(
        f'a{n}: login(email: "{email}", password: "{password}") {{ accessToken }}'
        for n, password in enumerate(passwords)
    )
    return f"mutation {{ {fields} }}"


def retry_after(body: dict[str, Any]) -> int:
    assert code(body) == "RATE_LIMITED", body
    value = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(value, int)
    return value


async def login_from(api: Api, ip: str, email: str, password: str) -> dict[str, Any]:
    _, body, _ = await api.post(
        LOGIN, {"email": email, "password": password}, **{"X-Forwarded-For": ip}
    )
    return body


async def register_from(api: Api, ip: str) -> None:
    _, body, _ = await api.post(
        REGISTER,
        {"email": "ada@example.com", "password": "correct horse"},
        **{"X-Forwarded-For": ip},
    )
    assert "errors" not in body, body


async def test_aliased_login_brute_force_in_one_request(start_api: StartApi) -> None:
    """20 guesses in one request: each alias that runs counts, and the limit holds."""
    api = await start_api(RATE_LIMIT_PER_EMAIL="5 per 15 minutes", TRUSTED_PROXIES="127.0.0.1")
    await register_from(api, OWNER_IP)
    codes = []
    for attempt in range(7):
        # Spelling variants are one email: the count is per normalised address.
        email = "ada@example.com" if attempt % 2 else "ADA@Example.com"
        query = aliased_logins(email, [f"guess-{attempt}-{n}" for n in range(20)])
        _, body, _ = await api.post(query, **{"X-Forwarded-For": ATTACKER_IP})
        assert body["data"] is None
        codes.append(code(body))
        if code(body) == "RATE_LIMITED":
            assert 0 < retry_after(body) <= 15 * 60
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"] * 2
    # A failed root mutation stops the rest of the request (login is non-null): 5 guesses in
    # all were checked, not 100.
    assert await AuditEvent.filter(kind="login_failed").count() == 5


async def test_the_email_limit_refuses_even_the_right_password_but_not_to_its_owner(
    start_api: StartApi,
) -> None:
    api = await start_api(RATE_LIMIT_PER_EMAIL="5 per 15 minutes", TRUSTED_PROXIES="127.0.0.1")
    await register_from(api, OWNER_IP)
    for n in range(5):
        wrong = await login_from(api, ATTACKER_IP, "ada@example.com", f"guess number {n}")
        assert code(wrong) == "INVALID_CREDENTIALS"
    # Locked: the right password from the attacker's IP, or any other unknown IP, is refused
    # without being checked, so the lock is no oracle.
    for ip in (ATTACKER_IP, "203.0.113.99", "2001:db8::1"):
        body = await login_from(api, ip, "ada@example.com", "correct horse")
        assert retry_after(body) > 0
    # The owner, from an IP their account signed in from, still gets in.
    body = await login_from(api, OWNER_IP, "ada@example.com", "correct horse")
    assert "errors" not in body, body
    assert body["data"]["login"]["accessToken"]
    assert await AuditEvent.filter(kind="login_rate_limited").count() == 3


async def test_the_owners_ip_has_its_own_quota_not_an_unlimited_one(start_api: StartApi) -> None:
    """An attacker behind the owner's NAT gets no more guesses than anyone else."""
    api = await start_api(RATE_LIMIT_PER_EMAIL="5 per 15 minutes", TRUSTED_PROXIES="127.0.0.1")
    await register_from(api, OWNER_IP)
    assert "errors" not in await login_from(api, "198.51.100.8", "ada@example.com", "correct horse")
    for n in range(5):  # the email locks
        body = await login_from(api, ATTACKER_IP, "ada@example.com", f"guess number {n}")
        assert code(body) == "INVALID_CREDENTIALS"
    for n in range(5):  # the shared IP's own quota for this email
        body = await login_from(api, OWNER_IP, "ada@example.com", f"nat guess {n}")
        assert code(body) == "INVALID_CREDENTIALS"
    body = await login_from(api, OWNER_IP, "ada@example.com", "correct horse")
    assert retry_after(body) > 0
    # The owner's other device, at another IP the account signed in from, still gets in.
    body = await login_from(api, "198.51.100.8", "ada@example.com", "correct horse")
    assert "errors" not in body, body


async def test_the_email_limit_does_not_reveal_which_emails_exist(start_api: StartApi) -> None:
    api = await start_api(RATE_LIMIT_PER_EMAIL="3 per 15 minutes", TRUSTED_PROXIES="127.0.0.1")
    await register_from(api, OWNER_IP)
    answers = {}
    for email in ("ada@example.com", "nobody@example.com"):
        codes = [
            code(await login_from(api, ATTACKER_IP, email, f"guess number {n}")) for n in range(4)
        ]
        answers[email] = codes
    assert answers["ada@example.com"] == answers["nobody@example.com"]
    assert answers["nobody@example.com"] == ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"]


async def test_per_ip_limit_on_register_login_and_refresh(start_api: StartApi) -> None:
    api = await start_api(RATE_LIMIT_PER_IP="3 per 15 minutes", TRUSTED_PROXIES="127.0.0.1")

    async def call(ip: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        _, body, _ = await api.post(query, variables, **{"X-Forwarded-For": ip})
        return body

    # register: three from one IP, then refused; another IP is not affected.
    for n in range(3):
        body = await call(
            "192.0.2.1", REGISTER, {"email": f"u{n}@example.com", "password": "pw-" * 3}
        )
        assert "errors" not in body, body
    body = await call("192.0.2.1", REGISTER, {"email": "u9@example.com", "password": "pw-" * 3})
    assert retry_after(body) > 0
    pair = (await call("192.0.2.2", LOGIN, {"email": "u0@example.com", "password": "pw-" * 3}))[
        "data"
    ]["login"]

    # login: the attempt count is per IP, failed or not.
    for n in range(2):
        body = await call("192.0.2.2", LOGIN, {"email": "u1@example.com", "password": f"x{n}" * 5})
        assert code(body) == "INVALID_CREDENTIALS"
    body = await call("192.0.2.2", LOGIN, {"email": "u1@example.com", "password": "pw-" * 3})
    assert retry_after(body) > 0

    # refresh: same.
    token = pair["refreshToken"]
    for _ in range(3):
        body = await call("192.0.2.3", REFRESH, {"t": token})
        assert "errors" not in body, body
        token = body["data"]["refresh"]["refreshToken"]
    assert retry_after(await call("192.0.2.3", REFRESH, {"t": token})) > 0
    # The refused call did not spend the token: its owner refreshes from elsewhere.
    body = await call("192.0.2.4", REFRESH, {"t": token})
    assert "errors" not in body, body


async def test_aliased_successful_logins_each_count_against_the_ip(start_api: StartApi) -> None:
    """Aliases that succeed all run: each one counts, and the one past the limit is refused."""
    api = await start_api(RATE_LIMIT_PER_IP="3 per 15 minutes")
    await api.register()  # the first call from this IP
    _, body, _ = await api.post(aliased_logins("ada@example.com", ["correct horse"] * 5))
    assert body["data"] is None
    assert retry_after(body) > 0
    # register + two logins ran, the third login was refused and stopped the rest.
    assert await Session.all().count() == 3


async def test_aliased_password_reset_requests_are_limited(start_api: StartApi) -> None:
    """20 aliased requests for one email: past RATE_LIMIT_PER_EMAIL they are RATE_LIMITED
    (retryAfter set), and no more mails go out than the limit allows."""
    from tests.helpers.mailbox import mails, start_with_mailbox

    api = await start_with_mailbox(start_api, RATE_LIMIT_PER_EMAIL="3 per 15 minutes")
    await api.register()
    fields = " ".join(f'a{n}: requestPasswordReset(email: "ada@example.com")' for n in range(20))
    _, body, _ = await api.post(f"mutation {{ {fields} }}")
    # Non-null root mutations: the first refusal nulls `data` and stops the rest.
    assert body["data"] is None
    assert retry_after(body) > 0
    assert body["errors"][0]["path"] == ["a3"]
    assert len(await mails(api, "ada@example.com")) == 3
    # An unknown email is limited exactly the same way: the answer tells nothing.
    fields = " ".join(f'a{n}: requestPasswordReset(email: "nobody@example.com")' for n in range(5))
    _, unknown, _ = await api.post(f"mutation {{ {fields} }}")
    assert retry_after(unknown) > 0
    assert unknown["errors"][0]["path"] == ["a3"]
