"""What each account mail says, and the links in it (VERIFY_EMAIL_URL, RESET_PASSWORD_URL)."""

from __future__ import annotations

from urllib.parse import quote

from api.infra.mail import Mail
from api.settings import Settings


def _hours(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds < 7200 else f"{seconds // 3600} hours"


class AccountMails:
    """Builds the account lifecycle mails from the settings' link templates."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _link(self, template: str, token: str) -> str:
        # str.replace, not str.format: a template may hold other braces (e.g. a URL fragment).
        return template.replace("{token}", quote(token, safe=""))

    def verify_email(self, to: str, token: str) -> Mail:
        link = self._link(self._settings.verify_email_url, token)
        return Mail(
            to=to,
            subject="Confirm your email address",
            text=(
                "Confirm that this address is yours by opening this link:\n\n"
                f"{link}\n\n"
                f"The link works once, for {_hours(self._settings.email_verification_ttl)}. "
                "If you did not ask for it, ignore this mail."
            ),
            kind="verify_email",
        )

    def change_email(self, to: str, token: str) -> Mail:
        link = self._link(self._settings.verify_email_url, token)
        return Mail(
            to=to,
            subject="Confirm your new email address",
            text=(
                "Someone asked to move an account to this address. If it was you, confirm it "
                "by opening this link:\n\n"
                f"{link}\n\n"
                f"The link works once, for {_hours(self._settings.email_verification_ttl)}. "
                "Until then the account keeps its old address. If it was not you, ignore "
                "this mail."
            ),
            kind="change_email",
        )

    def email_change_requested(self, to: str, new_email: str, token: str) -> Mail:
        link = self._link(self._settings.cancel_email_change_url, token)
        return Mail(
            to=to,
            subject="Someone asked to change your account's email address",
            text=(
                f"Someone asked to move your account to the address {new_email}. It moves "
                "only when that address's owner confirms it. If it was not you, cancel the "
                "change by opening this link, then change your password:\n\n"
                f"{link}\n\n"
                f"The link works once, for {_hours(self._settings.email_verification_ttl)}. "
                "A password reset or change also cancels it."
            ),
            kind="email_change_requested",
        )

    def email_changed(self, to: str) -> Mail:
        return Mail(
            to=to,
            subject="Your account's email address was changed",
            text=(
                "The email address of your account was changed to another address. If you "
                "did not do this, contact support at once."
            ),
            kind="email_changed",
        )

    def reset_password(self, to: str, token: str) -> Mail:
        link = self._link(self._settings.reset_password_url, token)
        return Mail(
            to=to,
            subject="Reset your password",
            text=(
                "Choose a new password by opening this link:\n\n"
                f"{link}\n\n"
                f"The link works once, for {_hours(self._settings.reset_token_ttl)}. Resetting "
                "signs you out everywhere. If you did not ask for it, ignore this mail: "
                "your password stays as it is."
            ),
            kind="reset_password",
        )
