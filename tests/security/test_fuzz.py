"""Schemathesis fuzzes every root field of a live server, signed in, on SQLite and PostgreSQL:
no answer may be a 5xx or carry `INTERNAL_SERVER_ERROR`, and nothing it sends may put a
traceback in the server's log.

The schema comes from the server's own introspection (on in development). Each root field gets
`EXAMPLES` generated operations (hypothesis, derandomized: CI sees the same documents every
run), each sent as a registered user or as an admin (hypothesis draws which); an identity whose
token a case spent (logout, deactivation, deletion, ...) signs in again, or is replaced. A
failure prints the field, the GraphQL document and the answer, to replay by hand.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from tests.helpers.graphql import LOGIN, REGISTER
from tests.helpers.live import DATABASES, ONE_WORKER, Deployment, LiveServer, deployment

# Cases per root field: 40 take ~20-25 s per database here; FUZZ_EXAMPLES=300 for a long hunt.
pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
PASSWORD = "correct horse battery"
WHO = "{ me { roles } }"
ROOTS = "{ __schema { queryType { name fields { name } } mutationType { name fields { name } } } }"
ZERO_ID = "00000000-0000-0000-0000-000000000000"


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Hostile values (as in an AFL dictionary) that argument literals are replaced with at times,
# so cases get past the first check of an argument (an address must parse) to the code behind.
HOSTILE_TEXT = [
    *("", " ", "\x00", "a\x00b", "\x1b[31m", "\\", "%", "_", "%_\\", "'", '"', "' OR '1'='1"),
    *("\u202e", "\ufeff", "\u0130", "\u017f", "\U0001f469\u200d\U0001f4bb", "x" * 201, "x" * 5000),
    *("null", "0", "-1", "1e309", "NaN", ZERO_ID, "../../etc/passwd", "<script>", "a" * 64),
]
CURSORS = [
    *(_cursor(json.dumps([at, ZERO_ID]).encode()) for at in ("0001-01-01T00:00:00+14:00",)),
    *(_cursor(json.dumps([at, ZERO_ID]).encode()) for at in ("9999-12-31T23:59:59-14:00",)),
    *(_cursor(raw) for raw in (b"[" * 3000, b"{}", b"[1, 2]", b"[null, null]", b"\xff\xfe", b"[]")),
    *("!!!", "===", "", "a", "WyJ4Il0"),
]
IDS = [*("0", "-1", "99999999999999999999", ZERO_ID, ZERO_ID.replace("0", "f"), ZERO_ID.upper())]
IDS += [f"{{{ZERO_ID}}}", f"urn:uuid:{ZERO_ID}", ZERO_ID.replace("-", ""), f" {ZERO_ID} "]
EMAILS = [*("fuzz@example.com", "FUZZ@Example.COM", "a+b@example.com", "\u00fc@example.com")]
EMAILS += [*("a@xn--bcher-kva.example", "a@[127.0.0.1]", '"q"@example.com', "a@example.com\n")]
EMAILS += ["x" * 64 + "@example.com", "a@" + "b" * 250 + ".com", "a@b", "@", "a@@b.com"]
SECRETS = [PASSWORD, "", "x" * 7, "x" * 4096, "\x00" * 8, "a.b.c", "eyJhbGciOiJub25lIn0.e30."]


def _json_value_nodes() -> st.SearchStrategy[graphql.ValueNode]:
    """Literal JSON values for the `JSON` scalar (passkey credentials): WebAuthn's keys with
    hostile leaves, nested a few levels."""
    nodes = schemathesis.graphql.nodes
    keys = st.sampled_from(
        ["id", "rawId", "type", "response", "clientDataJSON", "attestationObject",
         "authenticatorData", "signature", "userHandle", "transports", "x"]
    )  # fmt: skip
    leaves = st.one_of(
        st.sampled_from(HOSTILE_TEXT).map(nodes.String),
        st.text(max_size=40).map(nodes.String),
        st.integers(-(2**70), 2**70).map(nodes.Int),
        st.booleans().map(nodes.Boolean),
        st.just(nodes.Null),
    )

    def objects(children: st.SearchStrategy[graphql.ValueNode]) -> Any:
        fields = st.dictionaries(keys, children, max_size=5)
        return fields.map(
            lambda found: nodes.Object(
                [
                    graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                    for k, v in found.items()
                ]
            )
        )

    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(nodes.List), objects(children)
        ),
        max_leaves=20,
    )


schemathesis.graphql.scalar("JSON", _json_value_nodes())


FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        "dictionaries": {
            "text": {"values": HOSTILE_TEXT},
            "cursors": {"values": CURSORS},
            "ids": {"values": IDS},
            "emails": {"values": EMAILS},
            "secrets": {"values": SECRETS},
            "ints": {"values": [0, -1, 1, 100, 101, 2147483647, -2147483648]},
        },
        "generation": {
            "dictionaries": {
                "string": {"dictionary": "text", "probability": 0.25},
                "integer": {"dictionary": "ints", "probability": 0.3},
            }
        },
        "parameters": {
            **{f"*.*.{arg}": {"dictionary": "ids", "probability": 0.5} for arg in ("id", "userId")},
            **{
                f"*.*.{arg}": {"dictionary": "emails", "probability": 0.7}
                for arg in ("email", "newEmail")
            },
            "*.*.after": {"dictionary": "cursors", "probability": 0.6},
            **{
                f"*.*.{arg}": {"dictionary": "secrets", "probability": 0.5}
                for arg in ("password", "currentPassword", "newPassword", "token", "refreshToken")
            },
        },
    }
)


@dataclass
class Identity:
    """A signed-in client the fuzzer speaks as; `renew_if_spent` signs in again when a case
    ended its session, role or account."""

    role: str  # "user" or "admin"
    make: Callable[[str], None]  # creates an account with PASSWORD for this email
    server: LiveServer
    email: str = ""
    token: str = ""
    renewals: int = field(default=0)

    def sign_in(self) -> None:
        """Log in (a new session); create a fresh account when this one cannot sign in."""
        if self.email:
            body = self.server.gql(LOGIN, {"email": self.email, "password": PASSWORD})
            if not body.get("errors") and self.role in body["data"]["login"]["user"]["roles"]:
                self.token = body["data"]["login"]["accessToken"]
                return
        self.email = f"fuzz-{self.role}-{uuid.uuid4().hex[:10]}@example.com"
        self.make(self.email)
        body = self.server.gql(LOGIN, {"email": self.email, "password": PASSWORD})
        assert not body.get("errors"), body
        self.token = body["data"]["login"]["accessToken"]

    def renew_if_spent(self) -> None:
        """Sign in again when the token no longer works or no longer carries the role."""
        body = self.server.gql(WHO, token=self.token)
        if body.get("errors") or self.role not in body["data"]["me"]["roles"]:
            self.renewals += 1
            self.sign_in()


def _failure(response: requests.Response) -> str | None:
    """What is wrong with an answer, if anything: a 5xx, or a masked internal error."""
    if response.status_code >= 500:
        return f"status {response.status_code}"
    if "INTERNAL_SERVER_ERROR" in response.text:
        return "INTERNAL_SERVER_ERROR in the body"
    return None


def _fuzz_field(operation: Any, identities: list[Identity], http: requests.Session) -> int:
    """Send EXAMPLES cases to one root field (raises AssertionError on a failure); returns how
    many were sent."""
    label = operation.label
    mutation = operation.definition.is_mutation
    sent = 0
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=cases, who=st.sampled_from(identities))
    def fuzz_one(case: Any, who: Identity) -> None:
        nonlocal sent
        sent += 1
        headers = {"Authorization": f"Bearer {who.token}"}
        response = case.call(session=http, headers=headers, timeout=30)
        if mutation:  # only a mutation can end a session, a role or an account
            who.renew_if_spent()
        problem = _failure(response)
        assert problem is None, (
            f"{label} as {who.role}: {problem}\n"
            f"query:\n{case.body}\nanswer:\n{response.text[:2000]}"
        )

    fuzz_one()
    return sent


def _fuzz(server: LiveServer, identities: list[Identity]) -> tuple[list[str], dict[str, int]]:
    """Fuzz every root field; returns the failures found and the cases sent per field."""
    schema = schemathesis.graphql.from_url(server.graphql, config=FUZZ_CONFIG, timeout=10)
    failures: list[str] = []
    sent: dict[str, int] = {}
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            try:
                sent[operation.label] = _fuzz_field(operation, identities, http)
            except AssertionError as error:  # fuzz the other fields too; report all at the end
                failures.append(str(error))
                sent[operation.label] = -1
    return failures, sent


def _identities(live: Deployment) -> list[Identity]:
    def register(email: str) -> None:
        body = live.server.gql(REGISTER, {"email": email, "password": PASSWORD})
        assert not body.get("errors"), body

    def create_admin(email: str) -> None:
        live.create_user(email, PASSWORD, "admin")

    identities = [
        Identity("user", register, live.server),
        Identity("admin", create_admin, live.server),
    ]
    for identity in identities:
        identity.sign_in()
    return identities


@pytest.mark.slow
@pytest.mark.parametrize("database", DATABASES)
async def test_fuzzing_every_root_field_finds_no_server_error(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with deployment(tmp_path, database, ONE_WORKER) as live:
        identities = _identities(live)
        started = time.monotonic()
        failures, sent = await asyncio.to_thread(_fuzz, live.server, identities)
        took = time.monotonic() - started
        log = live.server.log()
        types = live.server.gql(ROOTS)["data"]["__schema"]
    roots = {
        f"{kind['name']}.{f['name']}"
        for kind in (types["queryType"], types["mutationType"])
        for f in kind["fields"]
    }
    with capsys.disabled():
        renewals = {i.role: i.renewals for i in identities}
        print(f"\nfuzz {database}: {sum(sent.values())} cases in {took:.1f} s; renewals {renewals}")
    assert set(sent) == roots, sent  # schemathesis skipped no root field
    assert all(count != 0 for count in sent.values()), sent
    assert not failures, "\n\n".join(failures)
    tracebacks = [line for line in log.splitlines() if "Traceback" in line]
    assert not tracebacks, log[-4000:]
