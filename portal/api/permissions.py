"""The API's default permission: signed in AND enrolled in MFA.

It is the ``DEFAULT_PERMISSION_CLASSES`` of REST_FRAMEWORK, so every endpoint gets it without
asking. A signed-in user without an authenticator gets 403 ``{"code": "mfa_required"}`` everywhere
except the methods a view lists in ``mfa_exempt_methods`` (only ``GET /api/v1/me/``, which tells a
client that enrolment is needed).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from portal.accounts import permissions
from portal.accounts.permissions import MFA_REQUIRED_MESSAGE


class IsAuthenticatedWithMFA(BasePermission):
    message = MFA_REQUIRED_MESSAGE
    code = "mfa_required"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not permissions.is_signed_in(user):
            # DRF answers "not_authenticated" for an anonymous request that reaches this.
            return False
        if request.method in getattr(view, "mfa_exempt_methods", ()):
            return True
        return permissions.has_mfa(user)
