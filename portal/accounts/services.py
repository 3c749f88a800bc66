"""Writes for users, organisations and memberships."""

from __future__ import annotations

from django.db import transaction

from portal.accounts.models import Membership, Organization, Role, User


@transaction.atomic
def organization_ensure(*, name: str, kind: str) -> Organization:
    """Return the organisation of this name and kind, creating it once."""
    organization, _created = Organization.objects.get_or_create(name=name, kind=kind)
    return organization


@transaction.atomic
def user_ensure(*, email: str, full_name: str, password: str, is_staff: bool = False) -> User:
    """Return the user with this e-mail (any case), creating it once; set the given password."""
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password, full_name=full_name)
    else:
        user.full_name = full_name
        user.set_password(password)
    user.is_staff = is_staff
    user.is_active = True
    user.save(update_fields=["full_name", "password", "is_staff", "is_active", "updated_at"])
    return user


@transaction.atomic
def membership_ensure(
    *, user: User, organization: Organization, role: Role, npi: str = ""
) -> Membership:
    """Give ``user`` ``role`` in ``organization`` (validated against the organisation's kind)."""
    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None:
        membership = Membership(user=user, organization=organization)
    membership.role = role
    membership.npi = npi
    membership.is_active = True
    membership.deactivated_at = None
    membership.full_clean(exclude=["user", "organization"])
    membership.save()
    return membership
