"""Who may do what with identities: small predicates, one condition per line.

The predicates read the memberships afresh; the MFA enrolment and the membership snapshot
(``principal_facts``) are read once per request. Either way a deactivated user or membership
loses its rights on the very next request. Services, selectors, views and API permission classes
all use these; no check is re-implemented inline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef

from portal.accounts.models import (
    CLINIC_ROLES,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from portal.core.request_cache import remember

AnyUser = AbstractBaseUser | AnonymousUser

# Authenticators that satisfy the MFA requirement. Recovery codes are a fallback for them, never a
# second factor on their own.
MFA_AUTHENTICATOR_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
MFA_REQUIRED_MESSAGE = (
    "Multi-factor authentication is required: set up an authenticator app or a security key first."
)


def is_signed_in(user: AnyUser | None) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def signed_in_user_id(user: AnyUser | None) -> int | None:
    """The id of an active, signed-in user; None for anyone else."""
    if user is None or not is_signed_in(user) or user.pk is None:
        return None
    return int(user.pk)


@dataclass(frozen=True)
class Principal:
    """What a request asks about its user, read in one query (``principal_facts``)."""

    has_mfa: bool
    #: The active memberships of an active user: (organisation id, organisation kind, role).
    memberships: tuple[tuple[int, str, str], ...]


def principal_facts(user_id: int) -> Principal:
    """The user's MFA enrolment and active memberships: one query, once per request (see
    ``portal.core.request_cache``), read afresh outside a request."""
    return remember(("principal", user_id), lambda: _read_principal(user_id))


def _read_principal(user_id: int) -> Principal:
    enrolled = Authenticator.objects.filter(
        user_id=OuterRef("pk"), type__in=MFA_AUTHENTICATOR_TYPES
    )
    # One row per membership (one row of NULLs without any): a LEFT JOIN from the user.
    rows = list(
        User.objects.filter(pk=user_id)
        .annotate(enrolled=Exists(enrolled))
        .values_list(
            "enrolled",
            "is_active",
            "memberships__organization_id",
            "memberships__organization__kind",
            "memberships__role",
            "memberships__is_active",
        )
    )
    if not rows:
        return Principal(has_mfa=False, memberships=())
    memberships = tuple(
        (organization_id, kind, role)
        for _enrolled, user_active, organization_id, kind, role, active in rows
        if user_active and active and organization_id is not None
    )
    return Principal(has_mfa=bool(rows[0][0]), memberships=memberships)


def has_mfa(user: AnyUser | None) -> bool:
    """The user has enrolled TOTP or a WebAuthn key (recovery codes alone do not count)."""
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return principal_facts(user_id).has_mfa


def is_member(user: AnyUser | None, organization: Organization) -> bool:
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return (
        Membership.objects.filter(user_id=user_id, organization=organization, is_active=True)
        .filter(user__is_active=True)
        .exists()
    )


def role_in(user: AnyUser | None, organization: Organization, roles: Iterable[str]) -> bool:
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return (
        Membership.objects.filter(user_id=user_id, organization=organization, is_active=True)
        .filter(user__is_active=True, role__in=list(roles))
        .exists()
    )


def is_clinic_staff(user: AnyUser | None) -> bool:
    """An active coordinator, clinician or clinic admin of a clinic."""
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return (
        Membership.objects.filter(user_id=user_id, is_active=True, user__is_active=True)
        .filter(organization__kind=Organization.Kind.CLINIC, role__in=list(CLINIC_ROLES))
        .exists()
    )


def is_clinic_admin(user: AnyUser | None) -> bool:
    """An active clinic admin (of any clinic)."""
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return (
        Membership.objects.filter(user_id=user_id, is_active=True, user__is_active=True)
        .filter(organization__kind=Organization.Kind.CLINIC, role=Role.CLINIC_ADMIN)
        .exists()
    )


def is_practice_provider(user: AnyUser | None, practice: Organization) -> bool:
    return practice.kind == Organization.Kind.PRACTICE and role_in(user, practice, [Role.PROVIDER])


def can_administer(user: AnyUser | None, organization: Organization) -> bool:
    """Clinic admins administer their own clinic and every referring practice."""
    if organization.kind == Organization.Kind.PRACTICE:
        return is_clinic_admin(user)
    return role_in(user, organization, [Role.CLINIC_ADMIN])


def can_invite(user: AnyUser | None, organization: Organization, role: str) -> bool:
    """Clinic admins invite any role into an organisation they administer; a practice's
    providers invite practice staff into their own practice."""
    if can_administer(user, organization):
        return True
    return role == Role.PRACTICE_STAFF and is_practice_provider(user, organization)


def can_manage_invitations(user: AnyUser | None) -> bool:
    """May see the invitations page at all (clinic admins and practice providers)."""
    user_id = signed_in_user_id(user)
    if user_id is None:
        return False
    return (
        Membership.objects.filter(user_id=user_id, is_active=True, user__is_active=True)
        .filter(role__in=[Role.CLINIC_ADMIN, Role.PROVIDER])
        .exists()
    )


def can_revoke_invitation(user: AnyUser | None, invitation: Invitation) -> bool:
    return can_invite(user, invitation.organization, invitation.role)


def can_create_practice(user: AnyUser | None) -> bool:
    return is_clinic_admin(user)


def can_deactivate_membership(user: AnyUser | None, membership: Membership) -> bool:
    """The same people who could have invited the member, never for their own membership (so the
    last admin cannot lock the clinic out by accident)."""
    if user is None or not is_signed_in(user) or membership.user_id == user.pk:
        return False
    if is_admin_site_user(user, "accounts.change_membership"):
        return True
    return can_invite(user, membership.organization, membership.role)


def is_admin_site_user(user: AnyUser | None, permission: str) -> bool:
    """Active staff holding a Django model permission (what the admin site checks)."""
    if not isinstance(user, User) or not is_signed_in(user):
        return False
    return user.is_staff and user.has_perm(permission)
