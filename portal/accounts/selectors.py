"""Reads of identity data, always scoped to the asking user.

``*_get_for_user`` raises the same ``NotFound`` for a row that does not exist and for one the user
may not see, so the two can never be told apart.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

from allauth.usersessions.models import UserSession
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from portal.accounts import permissions
from portal.accounts.models import (
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from portal.accounts.permissions import AnyUser
from portal.api.errors import NotFound
from portal.audit.services import audit_denied


def membership_list_for_user(*, user: AnyUser) -> QuerySet[Membership]:
    """The user's own active memberships, with their organisations."""
    user_id = permissions.signed_in_user_id(user)
    if user_id is None:
        return Membership.objects.none()
    return (
        Membership.objects.filter(user_id=user_id, is_active=True, user__is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )


def user_organizations(*, user: AnyUser) -> QuerySet[Organization]:
    """The organisations in which the user holds an active membership."""
    user_id = permissions.signed_in_user_id(user)
    if user_id is None:
        return Organization.objects.none()
    return Organization.objects.filter(
        memberships__user_id=user_id,
        memberships__is_active=True,
        memberships__user__is_active=True,
    ).order_by("name")


def clinic_staff_for_clinic(
    clinic: Organization, roles: Iterable[str] | None = None
) -> QuerySet[User]:
    """Active users with an active membership in ``clinic`` (only ``roles`` when given)."""
    memberships = Membership.objects.filter(organization=clinic, is_active=True)
    memberships = memberships.filter(organization__kind=Organization.Kind.CLINIC)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return (
        User.objects.filter(is_active=True, memberships__in=memberships)
        .distinct()
        .order_by("email")
    )


def practice_members_for_practice(practice: Organization) -> QuerySet[User]:
    """Active users with an active membership in the practice ``practice``."""
    memberships = Membership.objects.filter(
        organization=practice,
        organization__kind=Organization.Kind.PRACTICE,
        is_active=True,
    )
    return (
        User.objects.filter(is_active=True, memberships__in=memberships)
        .distinct()
        .order_by("email")
    )


def _organization_ids_with_role(
    *, user: AnyUser, kind: str, role: str
) -> QuerySet[Membership, Any]:
    return Membership.objects.filter(
        user_id=permissions.signed_in_user_id(user) or 0,
        user__is_active=True,
        is_active=True,
        role=role,
        organization__kind=kind,
    ).values("organization_id")


def organization_list_invitable_for_user(*, user: AnyUser) -> QuerySet[Organization]:
    """Organisations into which the user may invite someone (see ``permissions.can_invite``)."""
    if not permissions.can_manage_invitations(user):
        return Organization.objects.none()
    condition = Q(
        pk__in=_organization_ids_with_role(
            user=user, kind=Organization.Kind.PRACTICE, role=Role.PROVIDER
        )
    )
    if permissions.is_clinic_admin(user):
        condition |= Q(kind=Organization.Kind.PRACTICE)
        condition |= Q(
            pk__in=_organization_ids_with_role(
                user=user, kind=Organization.Kind.CLINIC, role=Role.CLINIC_ADMIN
            )
        )
    return Organization.objects.filter(condition).order_by("kind", "name")


def _manageable_filter(*, user: AnyUser) -> Q:
    """Invitations or memberships whose (organisation, role) the user may invite into."""
    condition = Q(
        organization_id__in=_organization_ids_with_role(
            user=user, kind=Organization.Kind.PRACTICE, role=Role.PROVIDER
        ),
        role=Role.PRACTICE_STAFF,
    )
    if permissions.is_clinic_admin(user):
        condition |= Q(organization__kind=Organization.Kind.PRACTICE)
        condition |= Q(
            organization_id__in=_organization_ids_with_role(
                user=user, kind=Organization.Kind.CLINIC, role=Role.CLINIC_ADMIN
            )
        )
    return condition


def invitation_list_for_user(*, user: AnyUser) -> QuerySet[Invitation]:
    """Invitations the user may see and revoke, newest first."""
    if not permissions.can_manage_invitations(user):
        return Invitation.objects.none()
    return (
        Invitation.objects.filter(_manageable_filter(user=user))
        .select_related("organization", "invited_by")
        .order_by("-created_at")
    )


def _denied(*, user: AnyUser, object_type: str, public_id: uuid.UUID | str) -> None:
    """Audit a request for an existing object that is not the user's (never for a missing one)."""
    audit_denied(
        actor=user if isinstance(user, User) else None,
        action=f"{object_type}.access",
        object_type=object_type,
        object_id=public_id,
    )


def invitation_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Invitation:
    try:
        return invitation_list_for_user(user=user).get(public_id=public_id)
    except (Invitation.DoesNotExist, ValueError, ValidationError) as error:
        parsed = _uuid_or_none(public_id)
        if parsed is not None and Invitation.objects.filter(public_id=parsed).exists():
            _denied(user=user, object_type="invitation", public_id=public_id)
        raise NotFound() from error


def _uuid_or_none(value: uuid.UUID | str) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invitation_get_by_token(*, token: str) -> Invitation:
    """The invitation a link's token belongs to, in any state; ``NotFound`` otherwise."""
    if not token or len(token) > 200:
        raise NotFound()
    try:
        return Invitation.objects.select_related("organization").get(
            token_hash=invitation_token_hash(token)
        )
    except Invitation.DoesNotExist as error:
        raise NotFound() from error


def membership_list_manageable_for_user(*, user: AnyUser) -> QuerySet[Membership]:
    """Memberships of other people that the user may deactivate, active ones first."""
    if not permissions.can_manage_invitations(user):
        return Membership.objects.none()
    return (
        Membership.objects.filter(_manageable_filter(user=user))
        .exclude(user_id=permissions.signed_in_user_id(user) or 0)
        .select_related("organization", "user")
        .order_by("-is_active", "organization__name", "user__email")
    )


def membership_get_manageable_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Membership:
    try:
        return membership_list_manageable_for_user(user=user).get(public_id=public_id)
    except (Membership.DoesNotExist, ValueError, ValidationError) as error:
        parsed = _uuid_or_none(public_id)
        if parsed is not None and Membership.objects.filter(public_id=parsed).exists():
            _denied(user=user, object_type="membership", public_id=public_id)
        raise NotFound() from error


def user_session_get_for_user(*, user: AnyUser, session_id: int | str) -> UserSession:
    """One of the user's own sessions (browser or app token)."""
    try:
        return UserSession.objects.get(
            user_id=permissions.signed_in_user_id(user) or 0, pk=int(session_id)
        )
    except (UserSession.DoesNotExist, ValueError, TypeError) as error:
        raise NotFound() from error
