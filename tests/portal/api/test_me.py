from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import ClinicFactory, MembershipFactory, ProviderMembershipFactory


@pytest.mark.django_db
def test_me_returns_the_user_and_their_memberships() -> None:
    provider = ProviderMembershipFactory.create(organization__name="Lakeside Family Medicine")
    clinic_membership = MembershipFactory.create(
        user=provider.user, organization=ClinicFactory.create(name="CFK"), role="coordinator"
    )
    MembershipFactory.create(is_active=False, user=provider.user)
    client = APIClient()
    client.force_authenticate(provider.user)

    response = client.get("/api/v1/me/")

    assert response.status_code == 200
    assert response.json() == {
        "id": str(provider.user.public_id),
        "email": provider.user.email,
        "full_name": provider.user.full_name,
        "memberships": [
            {
                "organization": str(clinic_membership.organization.public_id),
                "organization_name": "CFK",
                "organization_kind": "clinic",
                "role": "coordinator",
            },
            {
                "organization": str(provider.organization.public_id),
                "organization_name": "Lakeside Family Medicine",
                "organization_kind": "practice",
                "role": "provider",
            },
        ],
        "mfa_enabled": False,
    }


@pytest.mark.django_db
def test_me_needs_authentication() -> None:
    response = APIClient().get("/api/v1/me/")

    assert response.status_code in {401, 403}
    assert response.json()["code"] == "not_authenticated"
