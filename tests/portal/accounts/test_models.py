from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from portal.accounts.models import Membership, Organization, Role, User
from portal.accounts.validators import npi_is_valid, validate_npi
from tests.factories import ClinicFactory, OrganizationFactory, UserFactory


@pytest.mark.parametrize(
    ("npi", "valid"),
    [
        ("1234567893", True),
        ("1987654328", True),
        ("1234567890", False),  # wrong check digit
        ("123456789", False),  # too short
        ("12345678931", False),  # too long
        ("12345678a3", False),
        ("١٢٣٤٥٦٧٨٩٣", False),  # non-ASCII digits
        ("", False),
    ],
)
def test_npi_check_digit(npi: str, valid: bool) -> None:
    assert npi_is_valid(npi) is valid


def test_validate_npi_raises_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="valid 10-digit NPI"):
        validate_npi("1234567890")


@pytest.mark.django_db
def test_email_is_the_login_and_unique_ignoring_case() -> None:
    user = User.objects.create_user(email="Dr.Carter@Lakeside.Example", password="x" * 12)

    assert user.email == "dr.carter@lakeside.example"
    assert User.objects.get_by_natural_key("DR.CARTER@lakeside.example") == user
    with pytest.raises(IntegrityError):
        User.objects.create_user(email="dr.carter@LAKESIDE.example", password="x" * 12)


@pytest.mark.django_db
def test_every_row_has_a_public_uuid_and_timestamps() -> None:
    organization = OrganizationFactory.create()

    assert organization.public_id.version == 4
    assert organization.created_at is not None
    assert organization.updated_at >= organization.created_at


@pytest.mark.django_db
def test_a_provider_needs_a_valid_npi() -> None:
    practice = OrganizationFactory.create()
    membership = Membership(user=UserFactory.create(), organization=practice, role=Role.PROVIDER)

    with pytest.raises(ValidationError) as missing:
        membership.full_clean()
    membership.npi = "1234567890"
    with pytest.raises(ValidationError) as invalid:
        membership.full_clean()

    assert "npi" in missing.value.message_dict
    assert "npi" in invalid.value.message_dict


@pytest.mark.django_db
def test_the_database_refuses_a_provider_without_npi() -> None:
    with pytest.raises(IntegrityError):
        Membership.objects.create(
            user=UserFactory.create(), organization=OrganizationFactory.create(), role=Role.PROVIDER
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "role", "allowed"),
    [
        (Organization.Kind.PRACTICE, Role.PRACTICE_STAFF, True),
        (Organization.Kind.PRACTICE, Role.COORDINATOR, False),
        (Organization.Kind.PRACTICE, Role.CLINICIAN, False),
        (Organization.Kind.PRACTICE, Role.CLINIC_ADMIN, False),
        (Organization.Kind.CLINIC, Role.COORDINATOR, True),
        (Organization.Kind.CLINIC, Role.CLINICIAN, True),
        (Organization.Kind.CLINIC, Role.CLINIC_ADMIN, True),
        (Organization.Kind.CLINIC, Role.PRACTICE_STAFF, False),
    ],
)
def test_roles_belong_to_their_kind_of_organisation(
    kind: Organization.Kind, role: Role, allowed: bool
) -> None:
    organization = (
        ClinicFactory.create() if kind == Organization.Kind.CLINIC else OrganizationFactory.create()
    )
    membership = Membership(user=UserFactory.create(), organization=organization, role=role)

    if allowed:
        membership.full_clean()
    else:
        with pytest.raises(ValidationError) as error:
            membership.full_clean()
        assert "role" in error.value.message_dict


@pytest.mark.django_db
def test_a_user_has_one_membership_per_organisation() -> None:
    user, practice = UserFactory.create(), OrganizationFactory.create()
    Membership.objects.create(user=user, organization=practice, role=Role.PRACTICE_STAFF)

    with pytest.raises(IntegrityError):
        Membership.objects.create(user=user, organization=practice, role=Role.PRACTICE_STAFF)
