"""GraphQL object types: they shape answers; they decide nothing."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from api.accounts.mfa.enrolment import MfaState, mfa_state
from api.auth.sessions import IssuedPair
from api.db.models import Session as SessionRow
from api.db.models import User as UserRow
from api.db.reads import UserView
from api.errors import ForbiddenError, NotFoundError
from schema.context import Info
from schema.transport import Transport

T = TypeVar("T")


@strawberry.type(description="A user's second factors.")
class MfaStatus:
    totp_enabled: bool
    recovery_codes_left: int
    passkeys: int = strawberry.field(description="Registered passkeys (myPasskeys lists them).")

    @classmethod
    def of(cls, state: MfaState) -> MfaStatus:
        return cls(
            totp_enabled=state.totp_enabled,
            recovery_codes_left=state.recovery_codes_left,
            passkeys=state.passkeys,
        )


@strawberry.type(
    name="User", description="An account. `email` is visible to the user and admins only."
)
class UserType:
    # Known without the database: the token answers `me { id roles }` on its own.
    user_id: strawberry.Private[str]
    known_roles: strawberry.Private[list[str] | None] = None
    # Known when the row was read beforehand (a login's answer, a page loaded with its owners):
    # every field then answers synchronously, without a coroutine or a DataLoader round.
    row: strawberry.Private[UserView | None] = None
    own: strawberry.Private[bool] = False  # the viewer is this user (e.g. a login's answer)

    @classmethod
    def from_row(cls, row: UserRow | UserView, *, own: bool = False) -> UserType:
        view = row if isinstance(row, UserView) else UserView.of(row)
        return cls(user_id=view.id, known_roles=list(view.roles), row=view, own=own)

    async def _row(self, info: Info) -> UserView:
        if self.row is None:
            if self.user_id == info.context.viewer.user_id:
                self.row = await info.context.viewer_view()  # refuses a deactivated viewer
            else:
                self.row = await info.context.users.load(self.user_id)
            if self.row is None:
                raise NotFoundError()
        return self.row

    def _read(self, info: Info, pick: Callable[[UserView], T]) -> T | Awaitable[T]:
        """`pick` of the row: at once when it is known, else once it is loaded."""
        if self.row is not None:
            return pick(self.row)
        return self._read_later(info, pick)

    async def _read_later(self, info: Info, pick: Callable[[UserView], T]) -> T:
        return pick(await self._row(info))

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.user_id)

    @strawberry.field(
        description="Visible to the user themself and to admins only.", graphql_type=str
    )
    def email(self, info: Info) -> str | Awaitable[str]:
        viewer = info.context.viewer
        if not self.own and viewer.user_id != self.user_id and not viewer.has_role("admin"):
            raise ForbiddenError()
        return self._read(info, _email)

    @strawberry.field(description="Second factors: visible to the user themself and to admins.")
    async def mfa(self, info: Info) -> MfaStatus:
        viewer = info.context.viewer
        if not self.own and viewer.user_id != self.user_id and not viewer.has_role("admin"):
            raise ForbiddenError()
        return MfaStatus.of(await mfa_state(await self._row(info)))

    @strawberry.field(graphql_type=str | None)
    def display_name(self, info: Info) -> str | Awaitable[str | None] | None:
        return self._read(info, _display_name)

    @strawberry.field(graphql_type=list[str])
    def roles(self, info: Info) -> list[str] | Awaitable[list[str]]:
        # Synchronous when the token answers: graphql-core then completes `me { id roles }`
        # without a single coroutine (a sixth of that query's CPU); otherwise it awaits.
        if self.known_roles is not None:
            return self.known_roles
        return self._read(info, _roles)

    @strawberry.field(graphql_type=bool)
    def is_active(self, info: Info) -> bool | Awaitable[bool]:
        return self._read(info, _is_active)

    @strawberry.field(graphql_type=bool)
    def email_verified(self, info: Info) -> bool | Awaitable[bool]:
        return self._read(info, _email_verified)

    @strawberry.field(graphql_type=datetime)
    def created_at(self, info: Info) -> datetime | Awaitable[datetime]:
        return self._read(info, _created_at)

    @strawberry.field(graphql_type=datetime | None)
    def last_login_at(self, info: Info) -> datetime | Awaitable[datetime | None] | None:
        return self._read(info, _last_login_at)


_email = operator.attrgetter("email")
_display_name = operator.attrgetter("display_name")
_is_active = operator.attrgetter("is_active")
_email_verified = operator.attrgetter("email_verified")
_created_at = operator.attrgetter("created_at")
_last_login_at = operator.attrgetter("last_login_at")


def _roles(row: UserView) -> list[str]:
    return list(row.roles)


@strawberry.type(description="An access token, its refresh token, and who they belong to.")
class TokenPair:
    access_token: str
    refresh_token: str | None = strawberry.field(
        description="Null only when the REFRESH_COOKIE setting carries it instead."
    )
    token_type: str = strawberry.field(description='Always "Bearer".')
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    refresh_expires_in: int = strawberry.field(
        description="Seconds until the refresh token expires (never past SESSION_MAX_AGE)."
    )
    user: UserType

    @classmethod
    def delivered(cls, pair: IssuedPair, transport: Transport) -> TokenPair:
        """The answer to login/register/refresh: the refresh token sent by the transport."""
        return cls.from_issued(pair, include_refresh=transport.deliver(pair))

    @classmethod
    def from_issued(cls, pair: IssuedPair, *, include_refresh: bool = True) -> TokenPair:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token if include_refresh else None,
            token_type="Bearer",
            expires_in=pair.expires_in,
            refresh_expires_in=pair.refresh_expires_in,
            user=UserType.from_row(pair.user, own=True),
        )


@strawberry.type(name="Session", description="A signed-in device: one login and its refreshes.")
class SessionType:
    id: strawberry.ID
    device: str | None
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool = strawberry.field(description="The session of the token making this request.")

    @classmethod
    def from_row(cls, row: SessionRow, current_sid: str | None) -> SessionType:
        return cls(
            id=strawberry.ID(str(row.id)),
            device=row.device,
            user_agent=row.user_agent,
            ip=row.ip,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=min(row.expires_at, row.max_expires_at),
            current=str(row.id) == current_sid,
        )
