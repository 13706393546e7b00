"""The tables: User, Session, Revocation, AuditEvent, Note, ActionToken, and the second
factors' RecoveryCode and MfaChallenge.

Timestamps are set by the services from the injected clock (not `auto_now`), so tests can
move time without sleeping.
"""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    email = fields.CharField(max_length=254, unique=True)  # stored trimmed and lower-cased
    password_hash = fields.CharField(max_length=255)
    display_name = fields.CharField(max_length=200, null=True)
    roles: list[str] = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True)
    email_verified = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField(null=True)
    # Second factor (api/auth/totp.py): secrets encrypted with MFA_ENCRYPTION_KEY. `totp_secret`
    # set means enrolled; `totp_pending` is an enrolment started but not yet confirmed.
    totp_secret = fields.CharField(max_length=255, null=True)
    totp_pending = fields.CharField(max_length=255, null=True)
    # The last 30-second step whose code was accepted: a code is good once (no replay).
    totp_last_step = fields.BigIntField(default=0, db_default=0)

    sessions: fields.ReverseRelation[Session]

    class Meta:
        table = "users"
        indexes = (("created_at", "id"),)  # keyset pagination of the admin's user list


class Session(Model):
    """One login, the family of every refresh token rotated from it. Its id is the sid claim."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    device = fields.CharField(max_length=200, null=True)
    user_agent = fields.CharField(max_length=500, null=True)
    ip = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField()
    # Idle limit: the current refresh token's `exp`; each rotation moves it (never past max).
    expires_at = fields.DatetimeField()
    # Absolute limit: created_at + SESSION_MAX_AGE; no refresh extends it.
    max_expires_at = fields.DatetimeField()
    auth_time = fields.BigIntField()  # when the user last entered a password (epoch seconds)
    # RFC 8176 methods the session was signed in with (pwd, otp, mfa): every refresh keeps them.
    # Null for sessions started before second factors existed: a password only.
    amr: list[str] | None = fields.JSONField(null=True)
    # Only hashes of refresh `jti`s are kept; the current one is the compare-and-set key.
    current_jti_hash = fields.CharField(max_length=64)
    previous_jti_hash = fields.CharField(max_length=64, null=True)
    rotated_at = fields.DatetimeField(null=True)
    # Access tokens of this session with `iat` before this second are refused.
    access_not_before = fields.BigIntField(default=0)
    # The `iat` of the newest access token issued for this session: a new cut-off goes one
    # second past it (and past the clock), so cut-offs in a row pile up only when tokens
    # were issued between them.
    latest_access_iat = fields.BigIntField(default=0, db_default=0)
    ended_at = fields.DatetimeField(null=True)
    end_reason = fields.CharField(max_length=32, null=True)
    # The passkey the session was signed in with: removing the passkey ends the session.
    passkey_id = fields.UUIDField(null=True)

    user_id: uuid.UUID

    class Meta:
        table = "sessions"
        # ended_at and access_not_before: every worker polls them each second for revocations.
        indexes = (("user_id", "ended_at"), ("ended_at",), ("expires_at",), ("access_not_before",))


class Revocation(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """The revocation feed in commit order, written by a trigger on sessions (api.auth.revocation)."""

    # Commit-ordered on SQLite (one writer at a time), so workers read it by id there.
    id = fields.BigIntField(primary_key=True)
    sid = fields.UUIDField()  # no foreign key: the entry must outlive a deleted session
    not_before = fields.BigIntField()  # first `iat` still accepted (ENDED: none)
    # PostgreSQL: the writing transaction (pg_current_xact_id), read against snapshot xmin.
    xact_id = fields.BigIntField(null=True)

    class Meta:
        table = "revocations"
        indexes = (("xact_id",),)


class AuditEvent(Model):
    # Tortoise turns a model docstring into a table comment and splits SQL on ";": keep them out.
    """Security-relevant events, never tokens or passwords."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    kind = fields.CharField(max_length=40)
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    ip = fields.CharField(max_length=64, null=True)
    at = fields.DatetimeField()
    detail = fields.CharField(max_length=500, null=True)

    user_id: uuid.UUID | None

    class Meta:
        table = "audit_events"
        indexes = (("at", "id"), ("user_id", "at"))


class Note(Model):
    # No ";" here: Tortoise turns a model docstring into a table comment and splits SQL on it.
    """A note of one user: owners change their own, admins read and delete any."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    owner_id: uuid.UUID

    class Meta:
        table = "notes"
        # A page of one owner's notes, newest first, is one index range scan.
        indexes = (("owner_id", "created_at", "id"),)


class ActionToken(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """Single-use links mailed to a user (verify email, reset password, change email), as hashes."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    purpose = fields.CharField(max_length=20)  # verify_email | reset_password | change_email
    # SHA-256 of the mailed token: a database leak gives no usable link.
    token_hash = fields.CharField(max_length=64, unique=True)
    new_email = fields.CharField(max_length=254, null=True)  # change_email: the address to apply
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)  # set once, by a compare-and-set: single use
    created_at = fields.DatetimeField()

    user_id: uuid.UUID

    class Meta:
        table = "action_tokens"
        indexes = (("user_id", "purpose"),)


class RecoveryCode(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """One-time codes that stand in for the authenticator app, stored as SHA-256 hashes."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    code_hash = fields.CharField(max_length=64)
    used_at = fields.DatetimeField(null=True)  # set once, by a compare-and-set: single use
    created_at = fields.DatetimeField()

    user_id: uuid.UUID

    class Meta:
        table = "recovery_codes"
        indexes = (("user_id", "code_hash"),)


class MfaChallenge(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """The second step of one sign-in: the MFA token (as a hash) and what it is bound to."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    # SHA-256 of the password hash that was proved: a password change spends the token.
    proof = fields.CharField(max_length=64)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=500, null=True)
    device = fields.CharField(max_length=200, null=True)
    failures = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)  # spent: signed in, too many wrong codes, reset

    user_id: uuid.UUID

    class Meta:
        table = "mfa_challenges"
        indexes = (("user_id", "used_at"), ("expires_at",))


class Passkey(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """A WebAuthn credential of a user: its public key, never a secret."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    # base64url, as the browser names it (at most 1023 bytes, so 1364 characters)
    credential_id = fields.CharField(max_length=1400, unique=True)
    public_key = fields.TextField()  # the COSE key, base64url
    # The authenticator's counter: an assertion that does not move it forward is refused.
    sign_count = fields.BigIntField(default=0)
    aaguid = fields.CharField(max_length=36)
    transports: list[str] | None = fields.JSONField(null=True)
    # Backup eligible: a synced (multi-device) passkey, a software key for `amr` (swk).
    backup_eligible = fields.BooleanField(default=False)
    backed_up = fields.BooleanField(default=False)
    name = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)

    user_id: uuid.UUID

    class Meta:
        table = "passkeys"
        indexes = (("user_id", "created_at"),)


class PasskeyChallenge(Model):
    # No ";" in docstrings here: Tortoise turns them into SQL comments and splits SQL on it.
    """One WebAuthn ceremony in progress: its challenge, single use, and what it is bound to."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    # SHA-256 of the challengeId handed to the client.
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharField(max_length=16)  # register | sign_in | second_factor
    challenge = fields.CharField(max_length=128)  # base64url, what the authenticator signs
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.CASCADE
    )
    session_id = fields.UUIDField(null=True)  # register: the session that asked
    mfa_challenge_id = fields.UUIDField(null=True)  # second_factor: the MFA token's row
    email = fields.CharField(max_length=254, null=True)  # sign_in after an email: that address
    user_verification = fields.BooleanField(default=False)  # required by this ceremony
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)  # set once, by a compare-and-set: single use

    user_id: uuid.UUID | None

    class Meta:
        table = "passkey_challenges"
        indexes = (("expires_at",),)
