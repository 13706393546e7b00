"""Passkeys (WebAuthn): adding, listing, renaming and removing them, and signing in with one
(docs/passkeys.md). Decisions live in api/accounts/mfa/passkeys.py and passkey_signin.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NewType

import orjson
import strawberry
from graphql import GraphQLError, ValueNode, value_from_ast_untyped

from api.db.models import Passkey as PasskeyRow
from api.errors import BadUserInputError
from api.identity import parse_id
from schema.context import Info
from schema.permissions import FreshLogin, IsSignedIn, Public, guard
from schema.types import TokenPair

MAX_JSON_BYTES = 16_384  # a passkey credential is under 2 KiB; options are ours
MAX_JSON_DEPTH = 8  # a WebAuthn credential nests 3 deep


def _bounded(value: Any) -> Any:
    """A JSON input within MAX_JSON_DEPTH and MAX_JSON_BYTES (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
            if len(stack) > MAX_JSON_BYTES:  # every value takes a byte or more
                raise ValueError(f"JSON longer than {MAX_JSON_BYTES} bytes")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # an int over 64 bits, or a variable inside a literal
        raise ValueError("not JSON (a number over 64 bits, or a variable inside)") from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"JSON longer than {MAX_JSON_BYTES} bytes")
    return value


def _literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    # A GraphQLError: graphql-core hands any other exception of a literal on as the cause,
    # which is masked as a 500 (a variable's refused value has its own BAD_USER_INPUT path).
    try:
        return _bounded(value_from_ast_untyped(node, variables))
    except ValueError as exc:
        raise GraphQLError(
            f"Bad JSON literal: {exc}.",
            extensions={"code": BadUserInputError.code},
        ) from None


JSON = NewType("JSON", object)
# Mapped to JSON in the schema's config (schema/build.py: StrawberryConfig.scalar_map).
JSON_SCALAR = strawberry.scalar(
    name="JSON",
    description="A JSON value: WebAuthn options as the browser's JSON helpers take them "
    "(PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON), and "
    "credentials as credential.toJSON() makes them. Inputs: at most 16 KiB, 8 levels deep.",
    serialize=lambda value: value,
    parse_value=_bounded,
    parse_literal=_literal,
)


@strawberry.type(description="A passkey of the signed-in user.")
class Passkey:
    id: strawberry.ID
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: PasskeyRow) -> Passkey:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )


@strawberry.type(description="One WebAuthn ceremony: its id, and the options for the browser.")
class PasskeyChallenge:
    challenge_id: str = strawberry.field(
        description="Send it back with the credential; good once, for 5 minutes."
    )
    options: JSON = strawberry.field(
        description="PublicKeyCredentialCreationOptionsJSON (registration) or "
        "PublicKeyCredentialRequestOptionsJSON (sign-in)."
    )


@strawberry.type
class PasskeyQuery:
    @strawberry.field(extensions=guard(IsSignedIn), description="Your passkeys, oldest first.")
    async def my_passkeys(self, info: Info) -> list[Passkey]:
        rows = await info.context.services.passkeys.mine(info.context.claims)
        return [Passkey.from_row(row) for row in rows]


@strawberry.type
class PasskeyMutation:
    # Like TOTP enrolment: signed in and fresh, so an admin that MFA_REQUIRED_ROLES refuses
    # everywhere else can still add the passkey that satisfies it.
    @strawberry.mutation(
        extensions=guard(IsSignedIn, FreshLogin),
        description="Start adding a passkey: options for navigator.credentials.create(). "
        "Needs a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def start_passkey_registration(self, info: Info) -> PasskeyChallenge:
        ctx = info.context
        challenge_id, options = await ctx.services.passkeys.start(ctx.claims, ctx.client)
        return PasskeyChallenge(challenge_id=challenge_id, options=JSON(options))

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Finish adding a passkey with the browser's credential (toJSON()), from "
        "the session that started it. From then on a password sign-in asks for a second "
        "factor (MFA_REQUIRED).",
    )
    async def finish_passkey_registration(
        self,
        info: Info,
        challenge_id: str,
        credential: JSON,
        name: str | None = None,
    ) -> Passkey:
        ctx = info.context
        row = await ctx.services.passkeys.finish(
            ctx.claims, challenge_id, credential, name, ctx.client
        )
        return Passkey.from_row(row)

    @strawberry.mutation(
        extensions=guard(Public),
        description="Start signing in with a passkey: with no argument any passkey of this "
        "site (discoverable), with `email` that account's, with `mfaToken` as the second step "
        "of a password sign-in that answered MFA_REQUIRED.",
    )
    async def start_passkey_sign_in(
        self, info: Info, email: str | None = None, mfa_token: str | None = None
    ) -> PasskeyChallenge:
        ctx = info.context
        challenge_id, options = await ctx.services.passkey_signin.start(
            email, mfa_token, ctx.client
        )
        return PasskeyChallenge(challenge_id=challenge_id, options=JSON(options))

    @strawberry.mutation(
        extensions=guard(Public),
        description="Finish signing in with the browser's assertion (toJSON()): a token "
        "pair, its `amr` naming the passkey (hwk or swk) and mfa.",
    )
    async def finish_passkey_sign_in(
        self,
        info: Info,
        challenge_id: str,
        credential: JSON,
        device: str | None = None,
    ) -> TokenPair:
        ctx = info.context
        pair = await ctx.services.passkey_signin.finish(
            challenge_id, credential, device=device, client=ctx.client
        )
        return TokenPair.delivered(pair, ctx.transport)

    @strawberry.mutation(extensions=guard(IsSignedIn), description="Rename one of your passkeys.")
    async def rename_passkey(self, info: Info, id: strawberry.ID, name: str) -> Passkey:
        ctx = info.context
        row = await ctx.services.passkeys.rename(ctx.claims, parse_id(str(id)), name, ctx.client)
        return Passkey.from_row(row)

    @strawberry.mutation(
        extensions=guard(IsSignedIn, FreshLogin),
        description="Remove one of your passkeys (true). Needs a sign-in within "
        "FRESH_AUTH_MAX_AGE. The password stays, so the account always has a way in.",
    )
    async def remove_passkey(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        return await ctx.services.passkeys.remove(ctx.claims, parse_id(str(id)), ctx.client)
