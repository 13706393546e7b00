"""Two-factor sign-in: enrolment, the second step of `login`, and an admin's reset
(docs/mfa.md). Decisions live in api/accounts/mfa/."""

from __future__ import annotations

import strawberry

from api.accounts.mfa.enrolment import TotpSetup
from api.identity import parse_id
from schema.context import Info
from schema.permissions import FreshLogin, HasRole, IsSignedIn, MultiFactor, Public, guard
from schema.types import TokenPair


@strawberry.type(description="A new authenticator-app secret, to confirm with a first code.")
class TotpEnrollment:
    secret: str = strawberry.field(description="Base32, for typing into the app by hand.")
    otpauth_uri: str = strawberry.field(description="The `otpauth://totp/…` URI.")
    qr_svg: str = strawberry.field(description="The URI as a QR code, an SVG document.")

    @classmethod
    def of(cls, setup: TotpSetup) -> TotpEnrollment:
        return cls(secret=setup.secret, otpauth_uri=setup.otpauth_uri, qr_svg=setup.qr_svg)


@strawberry.type
class MfaMutation:
    # Enrolment needs only a signed-in, fresh token: an admin that MFA_REQUIRED_ROLES
    # refuses everywhere else can still turn the second factor on.
    @strawberry.mutation(
        extensions=guard(IsSignedIn, FreshLogin),
        description="Start turning on two-factor sign-in: a new secret (not active until "
        "confirmTotpEnrollment). Needs a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def start_totp_enrollment(self, info: Info) -> TotpEnrollment:
        ctx = info.context
        return TotpEnrollment.of(await ctx.services.mfa.start(ctx.claims, ctx.client))

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Turn two-factor sign-in on with a code from the app: the ten recovery "
        "codes, shown this once. Your other sessions end; this one's next tokens (after "
        "refresh) are multi-factor.",
    )
    async def confirm_totp_enrollment(self, info: Info, code: str) -> list[str]:
        ctx = info.context
        return await ctx.services.mfa.confirm(ctx.claims, code, ctx.client)

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Turn two-factor sign-in off (false when it was off). Needs a current "
        "code, the password, or a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def disable_totp(
        self, info: Info, code: str | None = None, password: str | None = None
    ) -> bool:
        ctx = info.context
        return await ctx.services.mfa.disable(ctx.claims, code, password, ctx.client)

    @strawberry.mutation(
        extensions=guard(IsSignedIn, FreshLogin),
        description="Ten new recovery codes (shown this once); the old ones stop working. "
        "Needs a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def regenerate_recovery_codes(self, info: Info) -> list[str]:
        ctx = info.context
        return await ctx.services.mfa.regenerate(ctx.claims, ctx.client)

    @strawberry.mutation(
        extensions=guard(Public),
        description="The second step of login: the mfaToken of its MFA_REQUIRED answer and "
        "a code from the app (or a recovery code) for a token pair.",
    )
    async def verify_mfa(
        self, info: Info, mfa_token: str, code: str, device: str | None = None
    ) -> TokenPair:
        ctx = info.context
        pair = await ctx.services.mfa_signin.verify(
            mfa_token, code, device=device, client=ctx.client
        )
        return TokenPair.delivered(pair, ctx.transport)

    @strawberry.mutation(
        extensions=guard(HasRole("admin"), FreshLogin, MultiFactor),
        description="Admin: turn off a user's second factor (a lost phone); their sessions "
        "end. Needs a multi-factor sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def reset_user_mfa(self, info: Info, user_id: strawberry.ID) -> bool:
        ctx = info.context
        await ctx.services.mfa_reset.reset(ctx.claims, parse_id(str(user_id)), ctx.client)
        return True
