"""Account lifecycle mutations: verify the email, reset a password, change the email, delete."""

from __future__ import annotations

import strawberry

from schema.context import Info
from schema.permissions import IsSignedIn, Public, guard
from schema.types import UserType


@strawberry.type
class AccountMutation:
    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Mail a verification link to your address (true; nothing is sent when "
        "it is already verified).",
    )
    async def request_email_verification(self, info: Info) -> bool:
        ctx = info.context
        await ctx.services.lifecycle.request_verification(
            await ctx.current_user(), info.context.claims, ctx.client
        )
        return True

    @strawberry.mutation(
        extensions=guard(Public),
        description="Use a mailed link's token: verifies the address, or applies a pending "
        "email change. A used, expired or other token is INVALID_TOKEN.",
    )
    async def verify_email(self, info: Info, token: str) -> UserType:
        ctx = info.context
        user = await ctx.services.lifecycle.verify_email(token, ctx.client)
        return UserType.from_row(user, own=True)  # the link went to this address's owner

    @strawberry.mutation(
        extensions=guard(Public),
        description="Mail a password reset link. Always true, in the same time, whether or "
        "not the address has an account.",
    )
    async def request_password_reset(self, info: Info, email: str) -> bool:
        ctx = info.context
        await ctx.services.lifecycle.request_password_reset(email, ctx.client)
        return True

    @strawberry.mutation(
        extensions=guard(Public),
        description="Set a new password with a reset link's token; every session ends.",
    )
    async def reset_password(self, info: Info, token: str, new_password: str) -> bool:
        ctx = info.context
        await ctx.services.lifecycle.reset_password(token, new_password, ctx.client)
        return True

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Mail a confirmation link to a new address; the change applies once it "
        "is used. Needs the password, a second-factor code, or a sign-in within "
        "FRESH_AUTH_MAX_AGE.",
    )
    async def change_email(
        self, info: Info, new_email: str, password: str | None = None, code: str | None = None
    ) -> bool:
        ctx = info.context
        await ctx.services.lifecycle.request_email_change(
            await ctx.current_user(), new_email, password, info.context.claims, ctx.client, code
        )
        return True

    @strawberry.mutation(
        extensions=guard(Public),
        description="Use the cancel link mailed to the current address when an email change "
        "was asked for: the pending change stops working (true). A used, expired or other "
        "token is INVALID_TOKEN.",
    )
    async def cancel_email_change(self, info: Info, token: str) -> bool:
        ctx = info.context
        await ctx.services.lifecycle.cancel_email_change(token, ctx.client)
        return True

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="Delete your account: sessions end, your data is erased. Needs the "
        "password, a second-factor code, or a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def delete_account(
        self, info: Info, password: str | None = None, code: str | None = None
    ) -> bool:
        ctx = info.context
        await ctx.services.deletion.delete(
            await ctx.current_user(), password, info.context.claims, ctx.client, code
        )
        info.context.transport.clear()
        return True
