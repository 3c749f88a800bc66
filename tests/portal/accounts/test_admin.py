"""The Django admin: only through allauth's sign-in with MFA, and only for active staff."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client

from portal.accounts.models import Membership, User
from portal.audit.models import AuditEvent
from tests.factories import UserFactory
from tests.personas import SIGNED_IN_PERSONAS, Cast, enrol_totp
from tests.portal.accounts.helpers import sign_in, sign_in_persona


def staff_user(*, with_mfa: bool) -> tuple[User, str]:
    user = UserFactory.create(email="it@cfketamine.example", is_staff=True, is_superuser=True)
    return user, enrol_totp(user) if with_mfa else ""


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_allauth_sign_in() -> None:
    client = Client()

    first = client.get("/admin/")
    assert first.status_code == 302
    assert first["Location"] == "/admin/login/?next=/admin/"
    second = client.get(first["Location"])
    assert second.status_code == 302
    assert second["Location"] == "/accounts/login/?next=%2Fadmin%2F"


@pytest.mark.django_db
def test_the_admin_login_form_never_takes_a_password() -> None:
    user, _secret = staff_user(with_mfa=True)
    client = Client()

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": user.email, "password": "correct-horse-battery-staple"},
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.get("/admin/").status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_staff_with_mfa_reach_the_admin_after_the_second_factor() -> None:
    user, secret = staff_user(with_mfa=True)
    client = Client()

    password_only = client.post(
        "/accounts/login/?next=/admin/",
        {"login": user.email, "password": "correct-horse-battery-staple"},
    )
    assert password_only["Location"].startswith("/accounts/2fa/authenticate/")
    assert client.get("/admin/").status_code == 302

    sign_in(client, user.email, "correct-horse-battery-staple", secret)

    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_staff_without_mfa_are_sent_to_enrolment() -> None:
    user, _secret = staff_user(with_mfa=False)
    client = Client()
    client.force_login(user)

    response = client.get("/admin/accounts/user/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/"


@pytest.mark.django_db
@pytest.mark.parametrize("name", SIGNED_IN_PERSONAS)
def test_signed_in_non_staff_are_refused(cast: Cast, name: str) -> None:
    client = Client()
    sign_in_persona(client, cast[name])

    index = client.get("/admin/")
    assert index.status_code == 302
    login = client.get(index["Location"])
    assert login.status_code == 403
    assert client.get("/admin/accounts/user/").status_code == 302


@pytest.mark.django_db
def test_deactivating_from_the_admin_ends_the_sessions_and_is_audited(cast: Cast) -> None:
    admin_user, secret = staff_user(with_mfa=True)
    admin = Client()
    sign_in(admin, admin_user.email, "correct-horse-battery-staple", secret)
    victim = Client()
    sign_in_persona(victim, cast["outsider"])
    outsider = cast.user("outsider")
    assert UserSession.objects.filter(user=outsider).count() == 1

    response = admin.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [outsider.pk]},
    )

    assert response.status_code == 302
    outsider.refresh_from_db()
    assert outsider.is_active is False
    assert not UserSession.objects.filter(user=outsider).exists()
    assert victim.get("/").status_code == 302
    event = AuditEvent.objects.get(action="user.deactivated")
    assert event.actor == admin_user
    assert event.details == {"sessions_ended": 1}


@pytest.mark.django_db
def test_memberships_are_deactivated_from_the_admin_only_through_the_service(cast: Cast) -> None:
    admin_user, secret = staff_user(with_mfa=True)
    admin = Client()
    sign_in(admin, admin_user.email, "correct-horse-battery-staple", secret)
    membership = cast["staff"].membership
    assert membership is not None

    # The change form does not offer is_active.
    page = admin.get(f"/admin/accounts/membership/{membership.pk}/change/")
    assert page.status_code == 200
    assert 'name="is_active"' not in page.content.decode()

    admin.post(
        "/admin/accounts/membership/",
        {"action": "deactivate_memberships", "_selected_action": [membership.pk]},
    )

    assert Membership.objects.get(pk=membership.pk).is_active is False
    assert AuditEvent.objects.filter(action="membership.deactivated").count() == 1
