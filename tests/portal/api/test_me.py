from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import ClinicFactory, MembershipFactory, ProviderMembershipFactory
from tests.personas import ALL_PERSONAS, Cast


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

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Session-Token"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_me_over_the_cast_shows_only_the_caller(cast: Cast, name: str) -> None:
    client = Client()
    if cast[name].user is not None:
        client.force_login(cast.user(name))

    response = client.get("/api/v1/me/")

    if name == "anonymous":
        assert response.status_code == 401
        assert response.json() == {
            "detail": "Authentication credentials were not provided.",
            "code": "not_authenticated",
        }
        return
    user = cast.user(name)
    membership = cast[name].membership
    assert membership is not None
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store, private"
    assert response.json() == {
        "id": str(user.public_id),
        "email": user.email,
        "full_name": user.full_name,
        "memberships": [
            {
                "organization": str(membership.organization.public_id),
                "organization_name": membership.organization.name,
                "organization_kind": membership.organization.kind,
                "role": membership.role,
            }
        ],
        "mfa_enabled": True,
    }


@pytest.mark.django_db
def test_me_is_read_only_and_other_methods_need_mfa() -> None:
    membership = MembershipFactory.create()
    client = Client()
    client.force_login(membership.user)

    response = client.post("/api/v1/me/", data={}, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
