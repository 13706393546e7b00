"""The services of one app, built once from the settings in create_app."""

from __future__ import annotations

from dataclasses import dataclass

from api.accounts.actions import ActionTokens
from api.accounts.admin import AdminActions
from api.accounts.deletion import AccountDeletion
from api.accounts.emails import AccountMails
from api.accounts.lifecycle import AccountLifecycle
from api.accounts.mfa.enrolment import MfaEnrolment
from api.accounts.mfa.passkey_signin import PasskeySignIn
from api.accounts.mfa.passkeys import PasskeyManager
from api.accounts.mfa.reset import MfaReset
from api.accounts.mfa.signin import MfaSignIn
from api.accounts.service import AccountService
from api.auth.audit import AuditLog
from api.auth.bearer import BearerAuthenticator
from api.auth.fresh import FreshAuth
from api.auth.keys import KeyRing
from api.auth.mfa_tokens import MfaTokens
from api.auth.passkey_challenges import PasskeyChallenges
from api.auth.passwords import PasswordHasher
from api.auth.ratelimit import RateLimiter
from api.auth.revocation import RevocationList
from api.auth.second_factor import SecondFactor
from api.auth.secretbox import SecretBox
from api.auth.sessions import SessionService
from api.auth.tokens import TokenService
from api.auth.webauthn import RelyingParty
from api.clock import Clock
from api.infra.events import EventBus
from api.infra.mail import Mailer, backend_for
from api.infra.metrics import Metrics
from api.resources.directory import Directory
from api.resources.notes import NoteService
from api.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    tokens: TokenService
    hasher: PasswordHasher
    revocations: RevocationList
    audit: AuditLog
    sessions: SessionService
    accounts: AccountService
    admin: AdminActions
    bearer: BearerAuthenticator
    keys: KeyRing
    limiter: RateLimiter
    mailer: Mailer
    fresh: FreshAuth
    lifecycle: AccountLifecycle
    deletion: AccountDeletion
    events: EventBus
    notes: NoteService
    directory: Directory
    metrics: Metrics
    mfa: MfaEnrolment
    mfa_signin: MfaSignIn
    mfa_reset: MfaReset
    mfa_tokens: MfaTokens
    factor: SecondFactor
    passkeys: PasskeyManager
    passkey_signin: PasskeySignIn
    passkey_challenges: PasskeyChallenges

    @classmethod
    def build(cls, settings: Settings, clock: Clock) -> Services:
        keys = KeyRing.from_settings(settings)
        metrics = Metrics()
        tokens = TokenService(settings, keys, clock)
        hasher = PasswordHasher(
            threads=settings.password_hash_threads,
            queue_limit=settings.password_hash_queue,
            max_wait=settings.password_hash_max_wait,
            nice=settings.password_hash_nice,
        )
        revocations = RevocationList(clock, settings.access_token_ttl, settings.jwt_leeway)
        audit = AuditLog(clock)
        limiter = RateLimiter(
            settings.rate_limit_per_email, settings.rate_limit_per_ip, settings.redis_url
        )
        sessions = SessionService(settings, tokens, revocations, audit, clock, limiter, metrics)
        mailer = Mailer(
            backend_for(
                settings.mail_url, sender=settings.mail_from, production=settings.is_production
            )
        )
        factor = SecondFactor(SecretBox(settings.mfa_encryption_key), clock)
        mfa_tokens = MfaTokens(settings.mfa_token_ttl, clock)
        fresh = FreshAuth(settings.fresh_auth_max_age, clock, hasher, limiter, audit, factor)
        action_tokens = ActionTokens(settings, clock)
        lifecycle = AccountLifecycle(
            tokens=action_tokens,
            mails=AccountMails(settings),
            mailer=mailer,
            hasher=hasher,
            sessions=sessions,
            fresh=fresh,
            audit=audit,
            limiter=limiter,
            clock=clock,
        )
        events = EventBus()
        party = RelyingParty(settings)
        challenges = PasskeyChallenges(clock)
        return cls(
            settings=settings,
            clock=clock,
            tokens=tokens,
            hasher=hasher,
            revocations=revocations,
            audit=audit,
            sessions=sessions,
            accounts=AccountService(
                hasher, sessions, audit, clock, limiter, metrics, fresh, action_tokens, mfa_tokens
            ),
            admin=AdminActions(sessions, audit, clock),
            metrics=metrics,
            limiter=limiter,
            bearer=BearerAuthenticator(tokens, revocations),
            keys=keys,
            mailer=mailer,
            fresh=fresh,
            lifecycle=lifecycle,
            deletion=AccountDeletion(sessions, fresh, audit, clock),
            events=events,
            notes=NoteService(clock, events),
            directory=Directory(),
            mfa=MfaEnrolment(
                sessions=sessions,
                factor=factor,
                mfa_tokens=mfa_tokens,
                fresh=fresh,
                audit=audit,
                limiter=limiter,
                clock=clock,
                issuer=settings.mfa_issuer,
            ),
            mfa_signin=MfaSignIn(
                sessions=sessions,
                factor=factor,
                mfa_tokens=mfa_tokens,
                limiter=limiter,
                audit=audit,
                metrics=metrics,
                clock=clock,
            ),
            mfa_reset=MfaReset(sessions, mfa_tokens, audit),
            mfa_tokens=mfa_tokens,
            factor=factor,
            passkeys=PasskeyManager(
                settings=settings,
                party=party,
                challenges=challenges,
                sessions=sessions,
                mfa_tokens=mfa_tokens,
                fresh=fresh,
                limiter=limiter,
                audit=audit,
                clock=clock,
            ),
            passkey_signin=PasskeySignIn(
                settings=settings,
                party=party,
                challenges=challenges,
                sessions=sessions,
                mfa_tokens=mfa_tokens,
                limiter=limiter,
                audit=audit,
                metrics=metrics,
                clock=clock,
            ),
            passkey_challenges=challenges,
        )
