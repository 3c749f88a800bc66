"""The identity middleware: session lifetime, the MFA gate and no-store on signed-in responses.

It sits after authentication (``request.user`` is known) and before allauth's user-session
tracking, so an expired session is ended before anything records activity on it. Deactivating a
user takes effect here too: Django's authentication backend no longer returns an inactive user, so
the request is anonymous from the next request on.
"""

from __future__ import annotations

from collections.abc import Callable

from allauth.core.internal.sessionkit import get_session_user
from allauth.headless.internal.sessionkit import session_store
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.cache import patch_cache_control

from portal.accounts import permissions
from portal.accounts.permissions import MFA_REQUIRED_MESSAGE
from portal.accounts.sessions import (
    LOGOUT_REASON_ATTRIBUTE,
    session_expiry_reason,
    session_touch,
)

API_PREFIX = "/api/"
HEADLESS_PREFIX = "/_allauth/"
HEADLESS_APP_PREFIX = "/_allauth/app/"
SESSION_TOKEN_HEADER = "HTTP_X_SESSION_TOKEN"  # noqa: S105 - a header name, not a secret  # nosec B105

# Pages a signed-in user without MFA may reach: enrolment, sign-out, re-authentication (which
# enrolment can ask for) and accepting a further invitation.
MFA_ENROLMENT_URL_NAMES = frozenset(
    {
        "mfa_index",
        "mfa_activate_totp",
        "mfa_add_webauthn",
        "account_reauthenticate",
        "account_logout",
        "invitation_accept",
        "invitation_accept_token",
    }
)
# The same for allauth's headless API (names without the "headless:<client>:" prefix).
MFA_ENROLMENT_HEADLESS_VIEWS = frozenset(
    {
        "config",
        "account:current_session",
        "account:reauthenticate",
        "mfa:authenticators",
        "mfa:manage_totp",
        "mfa:manage_webauthn",
    }
)
# Paths outside any gate: probes, static files, and the API (DRF's default permission gives the
# API its own MFA answer, 403 "mfa_required").
UNGATED_PREFIXES = ("/healthz", "/readyz", API_PREFIX)


def _is_html_path(path: str) -> bool:
    return not path.startswith((API_PREFIX, HEADLESS_PREFIX))


def _headless_view_name(view_name: str) -> str:
    """``headless:app:mfa:manage_totp`` -> ``mfa:manage_totp``."""
    parts = view_name.split(":")
    return ":".join(parts[2:]) if parts[:1] == ["headless"] else view_name


def _headless_app_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The user behind an app's ``X-Session-Token`` (looked up without touching the session)."""
    token = request.META.get(SESSION_TOKEN_HEADER)
    if not token:
        return None
    session = session_store(token)
    return get_session_user(session) if session.session_key else None


class IdentityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        early_response = self.process_identity(request)
        response = early_response or self.get_response(request)
        if self._is_signed_in_response(request):
            patch_cache_control(response, no_store=True, private=True)
        return response

    def process_identity(self, request: HttpRequest) -> HttpResponseBase | None:
        if request.user.is_authenticated:
            reason = session_expiry_reason(request.session)
            if reason is not None:
                setattr(request, LOGOUT_REASON_ATTRIBUTE, str(reason))
                logout(request)
                if _is_html_path(request.path_info):
                    messages.info(request, "You were signed out after a period of inactivity.")
                    return redirect_to_login(request.get_full_path())
                return None
            session_touch(request.session)
        return self.mfa_gate(request)

    def mfa_gate(self, request: HttpRequest) -> HttpResponseBase | None:
        path = request.path_info
        if path.startswith(UNGATED_PREFIXES) or path.startswith(settings.STATIC_URL):
            return None
        if path.startswith(HEADLESS_APP_PREFIX):
            user: AbstractBaseUser | None = _headless_app_user(request)
        else:
            user = request.user if request.user.is_authenticated else None
        if user is None or permissions.has_mfa(user):
            return None
        try:
            match = resolve(path)
        except Resolver404:
            return None
        if path.startswith(HEADLESS_PREFIX):
            if _headless_view_name(match.view_name) in MFA_ENROLMENT_HEADLESS_VIEWS:
                return None
            return JsonResponse(
                {"status": 403, "detail": MFA_REQUIRED_MESSAGE, "code": "mfa_required"},
                status=403,
            )
        if match.url_name in MFA_ENROLMENT_URL_NAMES:
            return None
        messages.info(request, MFA_REQUIRED_MESSAGE)
        return redirect("mfa_index")

    @staticmethod
    def _is_signed_in_response(request: HttpRequest) -> bool:
        """Responses to a signed-in user or carrying session tokens must never be cached."""
        return (
            request.user.is_authenticated
            or SESSION_TOKEN_HEADER in request.META
            or request.path_info.startswith(HEADLESS_PREFIX)
        )
