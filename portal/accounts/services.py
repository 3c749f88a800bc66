"""Writes for users, organisations, memberships, invitations and sessions."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from functools import partial

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal.accounts import permissions
from portal.accounts.auth_events import auth_event_record
from portal.accounts.models import (
    ROLES_BY_KIND,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from portal.accounts.selectors import invitation_token_hash
from portal.accounts.validators import npi_is_valid
from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.services import audit_record

logger = logging.getLogger(__name__)

INVITATION_VALIDITY = timedelta(days=7)
INVITATION_TOKEN_BYTES = 32


@transaction.atomic
def organization_ensure(*, name: str, kind: str) -> Organization:
    """Return the organisation of this name and kind, creating it once."""
    organization, _created = Organization.objects.get_or_create(name=name, kind=kind)
    return organization


@transaction.atomic
def practice_create(*, actor: User, name: str) -> Organization:
    """A clinic admin registers a referring practice (to invite its first provider into)."""
    if not permissions.can_create_practice(actor):
        raise Forbidden("Only a clinic admin may add a practice.")
    name = " ".join(name.split())
    if not name or len(name) > Organization._meta.get_field("name").max_length:  # type: ignore[operator]
        raise ServiceError("Enter the practice's name (at most 200 characters).", code="invalid")
    if Organization.objects.filter(name__iexact=name, kind=Organization.Kind.PRACTICE).exists():
        raise Conflict("A practice with this name already exists.", code="practice_exists")
    practice = Organization.objects.create(name=name, kind=Organization.Kind.PRACTICE)
    audit_record(
        actor=actor,
        action="organization.created",
        object_type="organization",
        object_id=practice.public_id,
        details={"kind": practice.kind},
    )
    return practice


def _email_address_ensure_verified(user: User) -> None:
    """The user's login e-mail is their primary, verified allauth address (MFA needs that)."""
    EmailAddress.objects.filter(user=user).exclude(email__iexact=user.email).update(primary=False)
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None:
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    elif not (address.verified and address.primary):
        address.verified = True
        address.primary = True
        address.save(update_fields=["verified", "primary"])


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
    _email_address_ensure_verified(user)
    return user


@transaction.atomic
def membership_ensure(
    *, user: User, organization: Organization, role: Role | str, npi: str = ""
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


def sessions_end_for_user(*, user: User) -> int:
    """End every session (browser and app token) of ``user`` at once; returns how many."""
    sessions = list(UserSession.objects.filter(user_id=user.pk))
    for session in sessions:
        session.end()
    return len(sessions)


@transaction.atomic
def membership_deactivate(*, actor: User, membership: Membership) -> Membership:
    """Remove a member from an organisation. Their sessions end now, so the loss of access does
    not wait for a page they happen to have open."""
    membership = (
        Membership.objects.select_for_update().select_related("organization").get(pk=membership.pk)
    )
    if not permissions.can_deactivate_membership(actor, membership):
        raise NotFound()
    if not membership.is_active:
        raise Conflict("This membership is already inactive.", code="already_inactive")
    membership.is_active = False
    membership.deactivated_at = timezone.now()
    membership.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    ended = sessions_end_for_user(user=membership.user)
    audit_record(
        actor=actor,
        action="membership.deactivated",
        object_type="membership",
        object_id=membership.public_id,
        details={
            "organization": str(membership.organization.public_id),
            "role": membership.role,
            "sessions_ended": ended,
        },
    )
    return membership


@transaction.atomic
def user_deactivate(*, actor: User, user: User) -> User:
    """Deactivate an account (staff only) and end all its sessions and tokens."""
    if not (actor.is_active and actor.is_staff) or actor.pk == user.pk:
        raise Forbidden("You may not deactivate this account.")
    user = User.objects.select_for_update().get(pk=user.pk)
    user.is_active = False
    user.save(update_fields=["is_active", "updated_at"])
    ended = sessions_end_for_user(user=user)
    audit_record(
        actor=actor,
        action="user.deactivated",
        object_type="user",
        object_id=user.public_id,
        details={"sessions_ended": ended},
    )
    return user


@transaction.atomic
def user_session_end(*, actor: User, session: UserSession) -> None:
    """The user ends one of their own sessions (another browser, a lost phone's app token)."""
    if session.user_id != actor.pk:
        raise NotFound()
    session.end()
    auth_event_record(action="auth.session_ended", user=actor)


@transaction.atomic
def mfa_totp_enrol(*, user: User, secret: str) -> Authenticator:
    """Enrol ``user`` in TOTP with a given seed, replacing any TOTP they had (demo data only:
    people enrol through the enrolment page, which makes the seed)."""
    Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).delete()
    authenticator = TOTP.activate(user, secret).instance
    audit_record(
        actor=None,
        action="auth.mfa_added",
        object_type="user",
        object_id=user.public_id,
        details={"type": "totp", "seeded": True},
    )
    return authenticator


def _normalize_email(email: str) -> str:
    return User.objects.normalize_email(email.strip()).lower()


def _validate_role(*, organization: Organization, role: str, npi: str) -> None:
    allowed = ROLES_BY_KIND.get(Organization.Kind(organization.kind), frozenset())
    if role not in allowed:
        raise ServiceError("This role does not exist in this kind of organisation.", code="invalid")
    if role == Role.PROVIDER and not npi_is_valid(npi):
        raise ServiceError(
            "A provider needs a valid 10-digit NPI (its last digit is a check digit).",
            code="invalid_npi",
        )
    if role != Role.PROVIDER and npi:
        raise ServiceError("Only providers carry an NPI.", code="invalid_npi")


def _invitation_email_send(*, invitation_id: int, token: str) -> None:
    """Send the invitation e-mail (after commit). The token travels only in this e-mail: it is
    never queued or stored, so a failure is logged and the invitation can be sent again."""
    invitation = Invitation.objects.select_related("organization").get(pk=invitation_id)
    link = settings.SITE_URL.rstrip("/") + reverse("invitation_accept_token", args=[token])
    context = {
        "organization": invitation.organization.name,
        "role": invitation.get_role_display(),
        "link": link,
        "expires_at": invitation.expires_at,
    }
    subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
    body = render_to_string("accounts/email/invitation_message.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception:
        logger.exception("invitation.email_failed", extra={"invitation": str(invitation.public_id)})


def _invitation_issue_token(invitation: Invitation) -> str:
    token = secrets.token_urlsafe(INVITATION_TOKEN_BYTES)
    invitation.token_hash = invitation_token_hash(token)
    invitation.expires_at = timezone.now() + INVITATION_VALIDITY
    return token


@transaction.atomic
def invitation_create(
    *,
    actor: User,
    organization: Organization,
    email: str,
    role: str,
    full_name: str = "",
    npi: str = "",
) -> Invitation:
    """Invite someone into ``organization`` with ``role``; the link is e-mailed after commit."""
    if not permissions.can_invite(actor, organization, role):
        raise Forbidden("You may not invite this role into this organisation.")
    email = _normalize_email(email)
    npi = npi.strip()
    _validate_role(organization=organization, role=role, npi=npi)
    if Membership.objects.filter(
        organization=organization, user__email__iexact=email, is_active=True
    ).exists():
        raise Conflict("This person is already a member of the organisation.", code="member")
    now = timezone.now()
    if Invitation.objects.filter(
        organization=organization,
        email__iexact=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).exists():
        raise Conflict(
            "An invitation for this address is still pending: revoke it or send it again.",
            code="invitation_pending",
        )
    invitation = Invitation(
        email=email,
        full_name=" ".join(full_name.split()),
        organization=organization,
        role=role,
        npi=npi,
        invited_by=actor,
    )
    token = _invitation_issue_token(invitation)
    invitation.full_clean()
    invitation.save()
    _invitation_audit(actor=actor, invitation=invitation, action="invitation.created")
    transaction.on_commit(partial(_invitation_email_send, invitation_id=invitation.pk, token=token))
    return invitation


def _invitation_audit(*, actor: User | None, invitation: Invitation, action: str) -> None:
    audit_record(
        actor=actor,
        action=action,
        object_type="invitation",
        object_id=invitation.public_id,
        details={"organization": str(invitation.organization.public_id), "role": invitation.role},
    )


def _invitation_lock(invitation: Invitation) -> Invitation:
    return (
        Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
    )


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    invitation = _invitation_lock(invitation)
    if not permissions.can_revoke_invitation(actor, invitation):
        raise NotFound()
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise Conflict("This invitation was already used or revoked.", code="invitation_closed")
    invitation.revoked_at = timezone.now()
    invitation.revoked_by = actor
    invitation.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
    _invitation_audit(actor=actor, invitation=invitation, action="invitation.revoked")
    return invitation


@transaction.atomic
def invitation_resend(*, actor: User, invitation: Invitation) -> Invitation:
    """Send a pending or expired invitation again with a new link (the old link stops working)
    valid for another 7 days."""
    invitation = _invitation_lock(invitation)
    if not permissions.can_revoke_invitation(actor, invitation):
        raise NotFound()
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise Conflict("This invitation was already used or revoked.", code="invitation_closed")
    token = _invitation_issue_token(invitation)
    invitation.save(update_fields=["token_hash", "expires_at", "updated_at"])
    _invitation_audit(actor=actor, invitation=invitation, action="invitation.resent")
    transaction.on_commit(partial(_invitation_email_send, invitation_id=invitation.pk, token=token))
    return invitation


def invitation_check_open(invitation: Invitation) -> None:
    """Raise a Conflict naming why a link no longer works (used, revoked, expired)."""
    status = invitation.status
    if status == Invitation.Status.ACCEPTED:
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if status == Invitation.Status.REVOKED:
        raise Conflict("This invitation was withdrawn.", code="invitation_revoked")
    if status == Invitation.Status.EXPIRED:
        raise Conflict("This invitation has expired. Ask for a new one.", code="invitation_expired")


def invitation_existing_account(invitation: Invitation) -> User | None:
    """The active account already using the invitation's e-mail address, if any."""
    return User.objects.filter(email__iexact=invitation.email, is_active=True).first()


@transaction.atomic
def invitation_accept(
    *,
    actor: User | None,
    invitation: Invitation,
    full_name: str = "",
    password: str = "",
) -> Membership:
    """Accept an invitation.

    ``actor`` is the signed-in user accepting, or None for someone not signed in. For a new
    address this creates the account with the chosen password and a verified e-mail (the link
    proved the mailbox). For an address that already has an active account, the person must be
    signed in as that account, and only the membership is added.
    """
    invitation = _invitation_lock(invitation)
    invitation_check_open(invitation)
    existing = invitation_existing_account(invitation)
    if existing is not None:
        if actor is None or actor.pk != existing.pk:
            raise Forbidden(
                "This invitation is for an existing account: sign in as that account to accept.",
                code="sign_in_required",
            )
        account = existing
    else:
        if actor is not None:
            raise Forbidden(
                "You are signed in as someone else: sign out, then open the link again.",
                code="sign_out_required",
            )
        full_name = " ".join(full_name.split())
        if not full_name:
            raise ServiceError("Enter your full name.", code="invalid")
        inactive = User.objects.filter(email__iexact=invitation.email).first()
        candidate = inactive or User(email=invitation.email, full_name=full_name)
        candidate.full_name = full_name
        try:
            validate_password(password, user=candidate)
        except ValidationError as error:
            raise ServiceError(" ".join(error.messages), code="invalid_password") from error
        if inactive is None:
            account = User.objects.create_user(
                email=invitation.email, password=password, full_name=full_name
            )
        else:
            # An account deactivated earlier comes back only through a new invitation.
            account = inactive
            account.set_password(password)
            account.is_active = True
            account.save(update_fields=["full_name", "password", "is_active", "updated_at"])
        _email_address_ensure_verified(account)
    membership = membership_ensure(
        user=account, organization=invitation.organization, role=invitation.role, npi=invitation.npi
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = account
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    _invitation_audit(actor=account, invitation=invitation, action="invitation.accepted")
    return membership
