"""The identity predicates and scoped selectors over the persona cast."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from portal.accounts import permissions, selectors
from portal.accounts.models import Membership, Role, User
from portal.api.errors import NotFound
from portal.audit.models import AuditEvent
from tests.factories import ClinicFactory, MembershipFactory
from tests.personas import ALL_PERSONAS, Cast


def user_or_anonymous(cast: Cast, name: str) -> User | AnonymousUser:
    return cast[name].user or AnonymousUser()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_predicates_over_the_cast(cast: Cast, name: str) -> None:
    user = user_or_anonymous(cast, name)
    practice_side = name in {"provider", "colleague", "staff"}
    clinic_side = name in {"coordinator", "clinician", "admin"}

    assert permissions.is_member(user, cast.practice) is practice_side
    assert permissions.is_member(user, cast.clinic) is clinic_side
    assert permissions.is_member(user, cast.other_practice) is (name == "outsider")
    assert permissions.is_clinic_staff(user) is clinic_side
    assert permissions.is_clinic_admin(user) is (name == "admin")
    assert permissions.role_in(user, cast.practice, [Role.PROVIDER]) is (
        name in {"provider", "colleague"}
    )
    assert permissions.has_mfa(user) is (name != "anonymous")
    assert permissions.can_invite(user, cast.practice, Role.PRACTICE_STAFF) is (
        name in {"provider", "colleague", "admin"}
    )
    assert permissions.can_invite(user, cast.practice, Role.PROVIDER) is (name == "admin")
    assert permissions.can_invite(user, cast.clinic, Role.CLINICIAN) is (name == "admin")
    assert permissions.can_create_practice(user) is (name == "admin")


@pytest.mark.django_db
def test_an_inactive_user_or_membership_holds_no_rights(cast: Cast) -> None:
    provider = cast.user("provider")
    Membership.objects.filter(user=provider).update(is_active=False)
    assert permissions.is_member(provider, cast.practice) is False
    assert permissions.can_invite(provider, cast.practice, Role.PRACTICE_STAFF) is False

    admin = cast.user("admin")
    admin.is_active = False
    assert permissions.is_clinic_admin(admin) is False
    assert permissions.has_mfa(admin) is False


@pytest.mark.django_db
def test_an_admin_of_another_clinic_does_not_administer_this_one(cast: Cast) -> None:
    other_admin = MembershipFactory.create(
        organization=ClinicFactory.create(), role=Role.CLINIC_ADMIN
    ).user

    assert permissions.can_invite(other_admin, cast.clinic, Role.COORDINATOR) is False
    # Practices refer to the clinics; any clinic admin may bring practices and their staff in.
    assert permissions.can_invite(other_admin, cast.practice, Role.PROVIDER) is True


@pytest.mark.django_db
def test_recipient_selectors_return_active_people_only(cast: Cast) -> None:
    assert list(selectors.clinic_staff_for_clinic(cast.clinic)) == sorted(
        [cast.user("admin"), cast.user("clinician"), cast.user("coordinator")],
        key=lambda user: user.email,
    )
    assert list(selectors.clinic_staff_for_clinic(cast.clinic, roles=[Role.COORDINATOR])) == [
        cast.user("coordinator")
    ]
    assert list(selectors.practice_members_for_practice(cast.practice)) == sorted(
        [cast.user("provider"), cast.user("colleague"), cast.user("staff")],
        key=lambda user: user.email,
    )
    # A clinic is never a practice and vice versa.
    assert not selectors.practice_members_for_practice(cast.clinic).exists()
    assert not selectors.clinic_staff_for_clinic(cast.practice).exists()

    Membership.objects.filter(user=cast.user("colleague")).update(is_active=False)
    User.objects.filter(pk=cast.user("clinician").pk).update(is_active=False)

    assert cast.user("colleague") not in selectors.practice_members_for_practice(cast.practice)
    assert cast.user("clinician") not in selectors.clinic_staff_for_clinic(cast.clinic)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_user_organizations_over_the_cast(cast: Cast, name: str) -> None:
    organizations = list(selectors.user_organizations(user=user_or_anonymous(cast, name)))

    expected = {
        "provider": [cast.practice],
        "colleague": [cast.practice],
        "staff": [cast.practice],
        "outsider": [cast.other_practice],
        "coordinator": [cast.clinic],
        "clinician": [cast.clinic],
        "admin": [cast.clinic],
        "anonymous": [],
    }[name]
    assert organizations == expected


@pytest.mark.django_db
def test_the_invitable_organisations(cast: Cast) -> None:
    assert list(selectors.organization_list_invitable_for_user(user=cast.user("admin"))) == [
        cast.clinic,
        cast.practice,
        cast.other_practice,
    ]
    assert list(selectors.organization_list_invitable_for_user(user=cast.user("provider"))) == [
        cast.practice
    ]
    for name in ("staff", "coordinator", "clinician"):
        assert not selectors.organization_list_invitable_for_user(user=cast.user(name)).exists()


@pytest.mark.django_db
def test_get_for_user_raises_the_same_not_found_for_missing_and_not_yours(cast: Cast) -> None:
    coordinator_membership = cast["coordinator"].membership
    assert coordinator_membership is not None

    with pytest.raises(NotFound) as not_yours:
        selectors.membership_get_manageable_for_user(
            user=cast.user("provider"), public_id=coordinator_membership.public_id
        )
    with pytest.raises(NotFound) as missing:
        selectors.membership_get_manageable_for_user(
            user=cast.user("provider"), public_id="00000000-0000-4000-8000-000000000000"
        )
    with pytest.raises(NotFound) as malformed:
        selectors.membership_get_manageable_for_user(
            user=cast.user("provider"), public_id="not-a-uuid"
        )
    assert not_yours.value.detail == missing.value.detail == malformed.value.detail
    assert not_yours.value.code == missing.value.code == "not_found"
    # Only the request for someone else's existing row is a denial worth auditing.
    denial = AuditEvent.objects.get(outcome="denied")
    assert (denial.action, denial.actor, denial.object_id) == (
        "membership.access",
        cast.user("provider"),
        str(coordinator_membership.public_id),
    )
