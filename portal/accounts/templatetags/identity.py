"""Template filters for the identity navigation."""

from __future__ import annotations

from django import template

from portal.accounts import permissions
from portal.accounts.permissions import AnyUser

register = template.Library()


@register.filter
def can_manage_invitations(user: AnyUser) -> bool:
    return permissions.can_manage_invitations(user)


@register.filter
def has_mfa(user: AnyUser) -> bool:
    return permissions.has_mfa(user)
