"""Invite-only accounts: sending, accepting, revoking and re-sending invitations."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client
from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import Invitation, Membership, Organization, Role, User
from portal.api.errors import Conflict, Forbidden, ServiceError
from portal.audit.models import AuditEvent
from tests.personas import ALL_PERSONAS, Cast

NEW_PASSWORD = "a long passphrase for the clinic"
LINK = re.compile(r"https?://[^/\s]+(/accounts/invitations/accept/[A-Za-z0-9_-]+/)")


def client_for(cast: Cast, name: str) -> Client:
    client = Client()
    if cast[name].user is not None:
        client.force_login(cast.user(name))
    return client


def invite(
    cast: Cast,
    *,
    by: str = "admin",
    email: str = "new.staff@lakeside.example",
    organization: Organization | None = None,
    role: str = Role.PRACTICE_STAFF,
    npi: str = "",
    full_name: str = "",
) -> Invitation:
    return services.invitation_create(
        actor=cast.user(by),
        organization=organization or cast.practice,
        email=email,
        role=role,
        npi=npi,
        full_name=full_name,
    )


def link_path(message: mail.EmailMessage) -> str:
    match = LINK.search(str(message.body))
    assert match is not None, message.body
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_an_admin_invites_a_provider_and_the_email_carries_a_single_link_and_no_phi(
    cast: Cast,
) -> None:
    client = client_for(cast, "admin")

    response = client.post(
        "/accounts/invitations/",
        {
            "organization": str(cast.other_practice.public_id),
            "role": "provider",
            "email": "New.Doctor@Orlando.example",
            "full_name": "Dr New",
            "npi": "1245319599",
        },
    )

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "new.doctor@orlando.example"
    assert invitation.organization == cast.other_practice
    assert (invitation.role, invitation.npi, invitation.invited_by) == (
        "provider",
        "1245319599",
        cast.user("admin"),
    )
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    assert invitation.expires_at - timezone.now() <= timedelta(days=7)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.doctor@orlando.example"]
    assert message.subject == "You are invited to the Referral Portal"
    token = link_path(message).rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 40
    # Only the token's hash is stored.
    assert invitation.token_hash != token
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert "Orlando Psychiatry Associates" in message.body
    assert "Referring provider" in message.body
    audit = AuditEvent.objects.get(action="invitation.created")
    assert audit.actor == cast.user("admin")
    assert audit.object_id == str(invitation.public_id)
    assert token not in str(audit.details)


@pytest.mark.django_db(transaction=True)
def test_accepting_sets_the_password_verifies_the_email_and_leads_to_mfa_enrolment(
    cast: Cast,
) -> None:
    invite(cast, full_name="Sam Staff")
    path = link_path(mail.outbox[0])
    client = Client()

    response = client.get(path)

    # The token leaves the address bar at once.
    assert response.status_code == 302
    assert response["Location"] == "/accounts/invitations/accept/"
    page = client.get("/accounts/invitations/accept/")
    assert page.status_code == 200
    assert "Join Lakeside Family Medicine" in page.content.decode()
    assert 'value="Sam Staff"' in page.content.decode()

    response = client.post(
        "/accounts/invitations/accept/",
        {"full_name": "Sam Staff", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/"
    user = User.objects.get(email="new.staff@lakeside.example")
    assert user.full_name == "Sam Staff"
    assert authenticate(email=user.email, password=NEW_PASSWORD) == user
    assert EmailAddress.objects.filter(user=user, verified=True, primary=True).count() == 1
    membership = Membership.objects.get(user=user)
    assert (membership.organization, membership.role, membership.is_active) == (
        cast.practice,
        "practice_staff",
        True,
    )
    invitation = Invitation.objects.get()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert invitation.accepted_by == user
    # Signed in, and the MFA gate holds everything else back until enrolment.
    assert client.get("/").status_code == 302
    assert client.get("/accounts/2fa/").status_code == 200
    # Enrolment does not ask for the password typed seconds ago again.
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_link_works_once(cast: Cast) -> None:
    invite(cast)
    path = link_path(mail.outbox[0])
    first = Client()
    first.get(path)
    first.post(
        "/accounts/invitations/accept/",
        {"full_name": "Sam Staff", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    second = Client()
    second.get(path)
    response = second.post(
        "/accounts/invitations/accept/",
        {"full_name": "Someone Else", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert User.objects.filter(email="new.staff@lakeside.example").count() == 1
    assert User.objects.get(email="new.staff@lakeside.example").full_name == "Sam Staff"


@pytest.mark.django_db(transaction=True)
def test_an_expired_invitation_creates_nothing(cast: Cast) -> None:
    invite(cast)
    path = link_path(mail.outbox[0])
    client = Client()

    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        client.get(path)
        response = client.post(
            "/accounts/invitations/accept/",
            {"full_name": "Late", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )

    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not User.objects.filter(email="new.staff@lakeside.example").exists()


@pytest.mark.django_db(transaction=True)
def test_a_revoked_invitation_creates_nothing(cast: Cast) -> None:
    invitation = invite(cast)
    path = link_path(mail.outbox[0])
    admin = client_for(cast, "admin")

    response = admin.post(f"/accounts/invitations/{invitation.public_id}/revoke/")

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert invitation.revoked_by == cast.user("admin")
    client = Client()
    client.get(path)
    response = client.post(
        "/accounts/invitations/accept/",
        {"full_name": "Sam", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 410
    assert not User.objects.filter(email="new.staff@lakeside.example").exists()


@pytest.mark.django_db(transaction=True)
def test_sending_again_replaces_the_link(cast: Cast) -> None:
    invitation = invite(cast)
    old_path = link_path(mail.outbox[0])
    admin = client_for(cast, "admin")

    admin.post(f"/accounts/invitations/{invitation.public_id}/resend/")

    assert len(mail.outbox) == 2
    new_path = link_path(mail.outbox[1])
    assert new_path != old_path
    assert Client().get(old_path).status_code == 404
    assert Client().get(new_path).status_code == 302


@pytest.mark.django_db
def test_an_unknown_link_is_refused() -> None:
    client = Client()

    assert client.get("/accounts/invitations/accept/not-a-real-token/").status_code == 404
    assert client.get("/accounts/invitations/accept/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_weak_or_mismatched_password_creates_nothing(cast: Cast) -> None:
    invite(cast)
    client = Client()
    client.get(link_path(mail.outbox[0]))

    for password1, password2 in (("short", "short"), ("password1234", "password1234")):
        response = client.post(
            "/accounts/invitations/accept/",
            {"full_name": "Sam", "password1": password1, "password2": password2},
        )
        assert response.status_code == 400
    response = client.post(
        "/accounts/invitations/accept/",
        {"full_name": "Sam", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.filter(email="new.staff@lakeside.example").exists()
    assert Invitation.objects.get().status == Invitation.Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_an_existing_account_accepts_by_signing_in_and_keeps_its_password(cast: Cast) -> None:
    coordinator = cast.user("coordinator")
    invite(cast, email=coordinator.email.upper(), role=Role.PRACTICE_STAFF)
    path = link_path(mail.outbox[0])
    anonymous = Client()
    anonymous.get(path)

    page = anonymous.get("/accounts/invitations/accept/")
    assert "already has an account" in page.content.decode()
    response = anonymous.post("/accounts/invitations/accept/", {"full_name": "X"})
    assert response.status_code == 200
    assert not Membership.objects.filter(user=coordinator, organization=cast.practice).exists()

    signed_in = client_for(cast, "coordinator")
    signed_in.get(path)
    response = signed_in.post("/accounts/invitations/accept/")

    assert response.status_code == 302
    assert Membership.objects.get(user=coordinator, organization=cast.practice).role == (
        "practice_staff"
    )
    coordinator.refresh_from_db()
    assert coordinator.check_password(cast["coordinator"].password)


@pytest.mark.django_db(transaction=True)
def test_someone_signed_in_as_another_account_cannot_accept(cast: Cast) -> None:
    invite(cast)
    client = client_for(cast, "outsider")
    client.get(link_path(mail.outbox[0]))

    response = client.post(
        "/accounts/invitations/accept/",
        {"full_name": "Sam", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert "Sign out" in response.content.decode()
    assert not User.objects.filter(email="new.staff@lakeside.example").exists()
    assert not Membership.objects.filter(user=cast.user("outsider"), organization=cast.practice)


@pytest.mark.django_db
def test_a_provider_invites_staff_into_their_own_practice_only(cast: Cast) -> None:
    invitation = invite(cast, by="provider")
    assert invitation.invited_by == cast.user("provider")

    with pytest.raises(Forbidden):
        invite(cast, by="provider", email="doc@x.example", role=Role.PROVIDER, npi="1245319599")
    with pytest.raises(Forbidden):
        invite(cast, by="provider", email="s@x.example", organization=cast.other_practice)
    with pytest.raises(Forbidden):
        invite(cast, by="provider", email="c@x.example", organization=cast.clinic)
    assert Invitation.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["staff", "coordinator", "clinician", "outsider"])
def test_other_roles_cannot_invite(cast: Cast, name: str) -> None:
    with pytest.raises(Forbidden):
        invite(cast, by=name)
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_the_role_must_fit_the_organisation_and_a_provider_needs_a_valid_npi(cast: Cast) -> None:
    with pytest.raises(ServiceError, match="does not exist in this kind"):
        invite(cast, role=Role.COORDINATOR)
    with pytest.raises(ServiceError, match="NPI"):
        invite(cast, role=Role.PROVIDER, npi="1234567890")
    with pytest.raises(ServiceError, match="Only providers"):
        invite(cast, role=Role.PRACTICE_STAFF, npi="1245319599")
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_no_second_pending_invitation_and_no_invitation_for_a_member(cast: Cast) -> None:
    invite(cast)
    with pytest.raises(Conflict, match="still pending"):
        invite(cast, email="NEW.STAFF@lakeside.example")
    with pytest.raises(Conflict, match="already a member"):
        invite(cast, email=cast.user("staff").email)
    assert Invitation.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_the_invitations_page_over_the_cast(cast: Cast, name: str) -> None:
    clinic_invitation = invite(
        cast, organization=cast.clinic, role=Role.COORDINATOR, email="c@cfk.example"
    )
    practice_invitation = invite(cast, email="s@lakeside.example")
    client = client_for(cast, name)

    response = client.get("/accounts/invitations/")

    expected = {
        "admin": 200,
        "provider": 200,
        "colleague": 200,
        # A provider of another practice may invite into theirs, and sees none of these.
        "outsider": 200,
        "anonymous": 302,
    }.get(name, 403)
    assert response.status_code == expected
    body = response.content.decode()
    assert ("s@lakeside.example" in body) == (name in {"admin", "provider", "colleague"})
    assert ("c@cfk.example" in body) == (name == "admin")
    assert clinic_invitation.email not in body or name == "admin"
    assert practice_invitation.email in body or name not in {"admin", "provider", "colleague"}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_revoking_a_clinic_invitation_over_the_cast(cast: Cast, name: str) -> None:
    invitation = invite(
        cast, organization=cast.clinic, role=Role.COORDINATOR, email="c@cfk.example"
    )
    client = client_for(cast, name)

    response = client.post(f"/accounts/invitations/{invitation.public_id}/revoke/")

    invitation.refresh_from_db()
    if name == "admin":
        assert response.status_code == 302
        assert invitation.status == Invitation.Status.REVOKED
    else:
        assert response.status_code == (302 if name == "anonymous" else 404)
        assert invitation.status == Invitation.Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_PERSONAS)
def test_resending_a_staff_invitation_over_the_cast(
    cast: Cast, name: str, django_capture_on_commit_callbacks: Any
) -> None:
    invitation = invite(cast)
    token_hash = invitation.token_hash
    client = client_for(cast, name)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/accounts/invitations/{invitation.public_id}/resend/")

    invitation.refresh_from_db()
    allowed = name in {"admin", "provider", "colleague"}
    assert response.status_code == (302 if allowed or name == "anonymous" else 404)
    assert len(mail.outbox) == (1 if allowed else 0)
    assert (invitation.token_hash != token_hash) == allowed
    assert AuditEvent.objects.filter(action="invitation.resent").exists() == allowed


@pytest.mark.django_db
def test_a_missing_invitation_answers_like_someone_elses(cast: Cast) -> None:
    client = client_for(cast, "provider")
    invitation = invite(
        cast, organization=cast.clinic, role=Role.COORDINATOR, email="c@cfk.example"
    )

    missing = client.post("/accounts/invitations/00000000-0000-4000-8000-000000000000/revoke/")
    not_yours = client.post(f"/accounts/invitations/{invitation.public_id}/revoke/")

    assert missing.status_code == not_yours.status_code == 404
    assert missing.content == not_yours.content


@pytest.mark.django_db
def test_an_admin_adds_a_practice_and_others_cannot(cast: Cast) -> None:
    response = client_for(cast, "admin").post(
        "/accounts/practices/new/", {"name": "  Winter  Park   Psychiatry "}
    )
    assert response.status_code == 302
    assert cast.practice.__class__.objects.filter(name="Winter Park Psychiatry").exists()

    duplicate = client_for(cast, "admin").post(
        "/accounts/practices/new/", {"name": "winter park psychiatry"}
    )
    assert duplicate.status_code == 400
    for name in ("provider", "coordinator", "staff"):
        assert (
            client_for(cast, name)
            .post("/accounts/practices/new/", {"name": f"{name} practice"})
            .status_code
            == 403
        )
    assert Client().post("/accounts/practices/new/", {"name": "anon"}).status_code == 302
    assert cast.practice.__class__.objects.filter(kind="practice").count() == 3


@pytest.mark.django_db
def test_a_bad_invitation_form_is_a_400_with_nothing_created(cast: Cast) -> None:
    client = client_for(cast, "admin")

    for data in (
        {},
        {"organization": "not-a-uuid", "role": "provider", "email": "a@b.example"},
        {"organization": str(cast.practice.public_id), "role": "king", "email": "a@b.example"},
        {"organization": str(cast.practice.public_id), "role": "practice_staff", "email": "nope"},
    ):
        assert client.post("/accounts/invitations/", data).status_code == 400
    assert not Invitation.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_an_invitation_brings_a_deactivated_account_back_with_a_new_password(cast: Cast) -> None:
    outsider = cast.user("outsider")
    User.objects.filter(pk=outsider.pk).update(is_active=False)
    invitation = invite(cast, email=outsider.email)

    membership = services.invitation_accept(
        actor=None, invitation=invitation, full_name="Back Again", password=NEW_PASSWORD
    )

    outsider.refresh_from_db()
    assert membership.user == outsider
    assert outsider.is_active is True
    assert outsider.full_name == "Back Again"
    assert outsider.check_password(NEW_PASSWORD)
    assert User.objects.filter(email__iexact=outsider.email).count() == 1


@pytest.mark.django_db
def test_accepting_refuses_a_missing_name(cast: Cast) -> None:
    invitation = invite(cast)

    with pytest.raises(ServiceError, match="full name"):
        services.invitation_accept(
            actor=None, invitation=invitation, full_name="   ", password=NEW_PASSWORD
        )
    assert not User.objects.filter(email=invitation.email).exists()
