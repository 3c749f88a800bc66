"""django-allauth adapters.

Accounts are created by invitation only, never by open signup. MFA secrets (the TOTP seed and the
recovery-code seed) are encrypted with the platform's envelope encryption before allauth stores
them in ``Authenticator.data``.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from portal.accounts.auth_events import auth_event_record, user_for_login
from portal.audit.models import Outcome
from portal.crypto.envelope import associated_data
from portal.crypto.values import decrypt_text, encrypt_text

# allauth's encrypt/decrypt hooks receive only the text, never the Authenticator row, so the
# associated data cannot bind the row's id: it binds the purpose (app, model, field) instead. A
# ciphertext therefore cannot be moved to another kind of field, but could be swapped between two
# Authenticator rows by someone able to write the table.
MFA_SECRET_ASSOCIATED_DATA = associated_data("mfa", "authenticator", "secret", "v1")


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """allauth refuses a sign-in here once the per-account or per-IP limit of failed attempts
        is reached (``ACCOUNT_RATE_LIMITS["login_failed"]``); record that lockout."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            auth_event_record(
                action="auth.lockout",
                user=user_for_login(credentials.get("email")),
                outcome=Outcome.DENIED,
                details={"reason": "too_many_failed_logins"},
            )
            raise


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return encrypt_text(text, associated_data=MFA_SECRET_ASSOCIATED_DATA)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_text(
            encrypted_text, associated_data=MFA_SECRET_ASSOCIATED_DATA, label="mfa.authenticator"
        )
