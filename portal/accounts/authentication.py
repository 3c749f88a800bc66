"""DRF authentication by allauth's ``X-Session-Token`` with a 401 for a missing or dead token."""

from __future__ import annotations

from typing import Any

from allauth.headless.contrib.rest_framework.authentication import XSessionTokenAuthentication
from drf_spectacular.contrib.django_allauth import XSessionTokenAuthenticationScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

SESSION_TOKEN_SCHEME = "Session-Token"  # noqa: S105 - a scheme name, not a secret  # nosec B105


class SessionTokenAuthentication(XSessionTokenAuthentication):
    """allauth's authentication, but a token that is sent and not valid (unknown, ended, past the
    idle or absolute limit, or of a deactivated user) is refused outright instead of falling
    through to the next authentication class; and an anonymous API request gets a 401 naming the
    scheme, so a client knows it must sign in again."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = self.get_session_token(request)
        if not token:
            return None
        result = super().authenticate(request)
        if result is None:
            raise AuthenticationFailed("The session token is not valid. Sign in again.")
        return result

    def authenticate_header(self, request: Request) -> str:
        return SESSION_TOKEN_SCHEME


class SessionTokenAuthenticationScheme(XSessionTokenAuthenticationScheme):
    """Documents the header in the OpenAPI schema, as drf-spectacular does for allauth's class."""

    target_class = "portal.accounts.authentication.SessionTokenAuthentication"
