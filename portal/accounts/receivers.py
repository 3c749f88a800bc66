"""Receivers of Django's and allauth's authentication signals (allauth's sanctioned hooks).

They start the session clocks at sign-in and record the authentication events (auth_events.py):
sign-in, failed sign-in, MFA success and failure, sign-out (with why), password and MFA changes.
"""

from __future__ import annotations

from typing import Any

from allauth.account.signals import password_changed, password_reset, password_set
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import (
    authentication_failed as mfa_authentication_failed,
)
from allauth.mfa.signals import (
    authenticator_added,
    authenticator_removed,
    authenticator_reset,
    authenticator_used,
)
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.accounts.auth_events import auth_event_record, user_for_login
from portal.accounts.models import User
from portal.accounts.sessions import (
    LOGOUT_REASON_ATTRIBUTE,
    session_discard,
    session_stamp_sign_in,
)
from portal.audit.models import Outcome


def _client(request: HttpRequest | None) -> str:
    """ "app" for allauth's headless app API, "browser" for the rest."""
    headless = getattr(getattr(request, "allauth", None), "headless", None)
    client = getattr(headless, "client", None)
    return "app" if getattr(client, "value", client) == "app" else "browser"


def _user(candidate: Any) -> User | None:
    return candidate if isinstance(candidate, User) and candidate.pk is not None else None


@receiver(user_logged_in, dispatch_uid="portal.accounts.sign_in")
def on_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Start the idle and absolute clocks of the new session (browser or app token)."""
    if request is not None and hasattr(request, "session"):
        session_stamp_sign_in(request.session)
    auth_event_record(action="auth.login", user=_user(user), details={"client": _client(request)})


@receiver(user_login_failed, dispatch_uid="portal.accounts.sign_in_failed")
def on_sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # The login name is used to find the account, never recorded: people type passwords into it.
    user = user_for_login(credentials.get("email") or credentials.get("username"))
    auth_event_record(
        action="auth.login_failed",
        user=user,
        outcome=Outcome.DENIED,
        details={"reason": "invalid_credentials", "client": _client(request)},
    )


@receiver(user_logged_out, dispatch_uid="portal.accounts.sign_out")
def on_sign_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    reason = getattr(request, LOGOUT_REASON_ATTRIBUTE, "user")
    if request is not None and hasattr(request, "session"):
        # The session is about to be flushed: drop it from the user's session list now.
        session_discard(request.session.session_key)
    auth_event_record(action="auth.logout", user=_user(user), details={"reason": str(reason)})


@receiver(authenticator_used, dispatch_uid="portal.accounts.mfa_used")
def on_mfa_used(
    sender: Any, user: Any, authenticator: Authenticator, reauthenticated: bool = False, **kw: Any
) -> None:
    auth_event_record(
        action="auth.mfa_succeeded",
        user=_user(user),
        details={"type": str(authenticator.type), "reauthentication": bool(reauthenticated)},
    )


@receiver(mfa_authentication_failed, dispatch_uid="portal.accounts.mfa_failed")
def on_mfa_failed(
    sender: Any, user: Any, authenticator: Authenticator, reauthentication: bool = False, **kw: Any
) -> None:
    auth_event_record(
        action="auth.mfa_failed",
        user=_user(user),
        outcome=Outcome.DENIED,
        details={"type": str(authenticator.type), "reauthentication": bool(reauthentication)},
    )


@receiver(authenticator_added, dispatch_uid="portal.accounts.mfa_added")
def on_mfa_added(sender: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    auth_event_record(
        action="auth.mfa_added", user=_user(user), details={"type": str(authenticator.type)}
    )


@receiver(authenticator_removed, dispatch_uid="portal.accounts.mfa_removed")
def on_mfa_removed(sender: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    auth_event_record(
        action="auth.mfa_removed", user=_user(user), details={"type": str(authenticator.type)}
    )


@receiver(authenticator_reset, dispatch_uid="portal.accounts.mfa_reset")
def on_mfa_reset(sender: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    auth_event_record(
        action="auth.mfa_reset", user=_user(user), details={"type": str(authenticator.type)}
    )


@receiver(password_changed, dispatch_uid="portal.accounts.password_changed")
def on_password_changed(sender: Any, user: Any, **kwargs: Any) -> None:
    auth_event_record(action="auth.password_changed", user=_user(user))


@receiver(password_set, dispatch_uid="portal.accounts.password_set")
def on_password_set(sender: Any, user: Any, **kwargs: Any) -> None:
    auth_event_record(action="auth.password_set", user=_user(user))


@receiver(password_reset, dispatch_uid="portal.accounts.password_reset")
def on_password_reset(sender: Any, user: Any, **kwargs: Any) -> None:
    auth_event_record(action="auth.password_reset", user=_user(user))
