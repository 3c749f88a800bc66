"""Deactivating a user or removing a membership takes effect on the very next request."""

from __future__ import annotations

import pytest
import time_machine
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.test import Client

from portal.accounts import permissions, selectors, services
from portal.accounts.models import Membership, User
from portal.api.errors import Forbidden
from portal.audit.models import AuditEvent
from tests.personas import ALL_PERSONAS, Cast
from tests.portal.accounts.helpers import app_sign_in, sign_in_persona

START = 1_900_000_000


def browser_and_app(cast: Cast, name: str) -> tuple[Client, Client, str]:
    persona = cast[name]
    assert persona.user is not None
    browser = Client()
    app = Client()
    with time_machine.travel(START, tick=False) as clock:
        sign_in_persona(browser, persona)
        clock.move_to(START + 60)  # the next TOTP code: a code is accepted once
        token = app_sign_in(app, persona.user.email, persona.password, persona.totp_secret)
    assert browser.get("/").status_code == 200
    assert app.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 200
    return browser, app, token


@pytest.mark.django_db
def test_a_deactivated_user_loses_browser_sessions_and_app_tokens_at_once(cast: Cast) -> None:
    browser, app, token = browser_and_app(cast, "outsider")
    staff = cast.user("admin")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])

    services.user_deactivate(actor=staff, user=cast.user("outsider"))

    assert browser.get("/")["Location"].startswith("/accounts/login/")
    assert app.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 401
    assert not Session.objects.filter(session_key=token).exists()
    assert not UserSession.objects.filter(user=cast.user("outsider")).exists()


@pytest.mark.django_db
def test_deactivation_holds_on_the_next_request_even_without_ending_sessions(cast: Cast) -> None:
    """Authentication re-reads the account on every request: a row flipped by any means counts."""
    browser, app, token = browser_and_app(cast, "outsider")

    User.objects.filter(pk=cast.user("outsider").pk).update(is_active=False)

    assert browser.get("/")["Location"].startswith("/accounts/login/")
    assert browser.get("/api/v1/me/").status_code == 401
    assert app.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 401


@pytest.mark.django_db
def test_nobody_deactivates_their_own_account_and_only_staff_deactivate(cast: Cast) -> None:
    with pytest.raises(Forbidden):
        services.user_deactivate(actor=cast.user("admin"), user=cast.user("outsider"))
    staff = cast.user("admin")
    staff.is_staff = True
    with pytest.raises(Forbidden):
        services.user_deactivate(actor=staff, user=staff)
    assert User.objects.filter(is_active=False).count() == 0


@pytest.mark.django_db
def test_a_removed_member_loses_the_organisation_on_the_next_request(cast: Cast) -> None:
    browser, app, token = browser_and_app(cast, "provider")
    staff_client = Client()
    sign_in_persona(staff_client, cast["staff"])
    staff_membership = cast["staff"].membership
    assert staff_membership is not None

    response = browser.post(f"/accounts/members/{staff_membership.public_id}/deactivate/")

    assert response.status_code == 302
    staff_membership.refresh_from_db()
    assert staff_membership.is_active is False
    assert staff_membership.deactivated_at is not None
    # The member's own sessions ended; the provider's did not.
    assert staff_client.get("/")["Location"].startswith("/accounts/login/")
    assert browser.get("/").status_code == 200
    assert not permissions.is_member(cast.user("staff"), cast.practice)
    assert cast.user("staff") not in selectors.practice_members_for_practice(cast.practice)
    event = AuditEvent.objects.get(action="membership.deactivated")
    assert event.actor == cast.user("provider")
    assert event.details["sessions_ended"] == 1
    assert app.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 200


@pytest.mark.django_db
def test_a_membership_flipped_by_any_means_counts_on_the_next_request(cast: Cast) -> None:
    browser, app, token = browser_and_app(cast, "provider")
    assert browser.get("/accounts/invitations/").status_code == 200

    Membership.objects.filter(user=cast.user("provider")).update(is_active=False)

    assert browser.get("/accounts/invitations/").status_code == 403
    me = app.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
    assert me.status_code == 200
    assert me.json()["memberships"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_removing_the_practice_staff_member_over_the_cast(cast: Cast, name: str) -> None:
    membership = cast["staff"].membership
    assert membership is not None
    client = Client()
    if cast[name].user is not None:
        client.force_login(cast.user(name))

    response = client.post(f"/accounts/members/{membership.public_id}/deactivate/")

    allowed = name in {"provider", "colleague", "admin"}
    expected = 302 if allowed or name == "anonymous" else 404
    assert response.status_code == expected
    membership.refresh_from_db()
    assert membership.is_active is not allowed
    assert AuditEvent.objects.filter(action="membership.deactivated").exists() == allowed


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_removing_a_clinic_member_over_the_cast(cast: Cast, name: str) -> None:
    membership = cast["coordinator"].membership
    assert membership is not None
    client = Client()
    if cast[name].user is not None:
        client.force_login(cast.user(name))

    response = client.post(f"/accounts/members/{membership.public_id}/deactivate/")

    membership.refresh_from_db()
    if name == "admin":
        assert response.status_code == 302
        assert membership.is_active is False
    else:
        assert response.status_code == (302 if name == "anonymous" else 404)
        assert membership.is_active is True


@pytest.mark.django_db
def test_an_admin_cannot_remove_their_own_membership(cast: Cast) -> None:
    membership = cast["admin"].membership
    assert membership is not None
    client = Client()
    client.force_login(cast.user("admin"))

    response = client.post(f"/accounts/members/{membership.public_id}/deactivate/")

    assert response.status_code == 404
    membership.refresh_from_db()
    assert membership.is_active is True


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_the_members_page_over_the_cast(cast: Cast, name: str) -> None:
    client = Client()
    if cast[name].user is not None:
        client.force_login(cast.user(name))

    response = client.get("/accounts/members/")

    expected = {"admin": 200, "provider": 200, "colleague": 200, "outsider": 200}
    assert response.status_code == expected.get(name, 302 if name == "anonymous" else 403)
    body = response.content.decode()
    assert ("staff@cast.example" in body) == (name in {"admin", "provider", "colleague"})
    assert ("coordinator@cast.example" in body) == (name == "admin")
