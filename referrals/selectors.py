"""Every read of referrals for a user, scoped to what that user may see.

``*_get_for_user`` raise the same ``NotFound`` for a missing row and for one the user may not
see, and audit the denial. Reads that return PHI (``referral_detail_for_user``,
``referral_events_for_user``, ``attachment_open_for_user``, ``referral_fhir_for_user`` in the API)
write an ``audit_phi_read`` event before returning data; if it cannot be written nothing is
returned.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from django.db.models import Q, QuerySet
from django.utils import timezone

from portal.accounts.models import Organization, Role, User
from portal.accounts.permissions import AnyUser
from portal.api.errors import NotFound
from portal.audit.services import audit_denied, audit_phi_read
from portal.core.models import field_names
from portal.crypto.blind_index import patient_blind_index
from portal.crypto.keys import blind_index_key
from portal.crypto.storage import EncryptedFileStream, open_encrypted_file
from referrals import hooks, permissions, transitions
from referrals.models import (
    Attachment,
    ClinicSettings,
    Patient,
    PriorTrial,
    Referral,
    ReferralEvent,
    ReferralStatus,
)
from referrals.permissions import PRACTICE_ONLY_STATES, TRIAGE_STATES, Access, access_for
from referrals.screening import Screening, compute_screening
from referrals.services import ATTACHMENT_PURPOSE, clinic_settings_for
from referrals.sla import is_overdue

#: Statuses in the clinic's triage worklist (referrals waiting for a clinic action).
WORKLIST_STATES = frozenset(
    {
        ReferralStatus.SUBMITTED,
        ReferralStatus.IN_REVIEW,
        ReferralStatus.INFO_REQUESTED,
        ReferralStatus.ACCEPTED,
        ReferralStatus.SCHEDULED,
    }
)


def _visible_filter(access: Access) -> Q:
    """Practice members: their practices' referrals; clinic staff: their clinics' non-drafts."""
    return Q(practice_id__in=access.practice_ids) | (
        Q(clinic_id__in=access.clinic_ids) & ~Q(status__in=PRACTICE_ONLY_STATES)
    )


def _audit_refused(user: AnyUser, object_type: str, public_id: uuid.UUID) -> None:
    """Record that the user asked for an existing object that is not theirs. A missing one is
    not recorded (guesses would flood the trail and say nothing about a real object)."""
    audit_denied(
        actor=user if isinstance(user, User) else None,
        action=f"{object_type}.read",
        object_type=object_type,
        object_id=public_id,
    )


def _as_uuid(public_id: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(public_id, uuid.UUID):
        return public_id
    try:
        return uuid.UUID(str(public_id))
    except ValueError:
        return None


def referral_list_for_user(
    *,
    user: AnyUser,
    status: Sequence[str] | None = None,
    urgent: bool | None = None,
    overdue: bool | None = None,
    q: str | None = None,
    now: datetime.datetime | None = None,
) -> QuerySet[Referral]:
    """The referrals the user may see, newest first, with what a list row shows loaded.

    Filters: ``status`` (any of), ``urgent``, ``overdue`` (triage running past its due time) and
    ``q`` (a case-insensitive part of the referral number, e.g. "00042" or "R-2026"). The rows
    carry no PHI; patient names are shown only by the detail (which audits the read).
    """
    access = access_for(user)
    if access.user_id is None:
        return Referral.objects.none()
    referrals = Referral.objects.filter(_visible_filter(access))
    if status:
        referrals = referrals.filter(status__in=list(status))
    if urgent is not None:
        referrals = referrals.filter(urgent=urgent)
    if overdue is not None:
        overdue_q = Q(status__in=TRIAGE_STATES, triage_due_at__lt=now or timezone.now())
        referrals = referrals.filter(overdue_q) if overdue else referrals.exclude(overdue_q)
    if q:
        referrals = referrals.filter(number__icontains=q.strip())
    return referrals.select_related("practice", "clinic", "provider", "created_by").order_by(
        "-created_at"
    )


def referral_worklist_for_user(*, user: AnyUser) -> QuerySet[Referral]:
    """The clinic's triage worklist: open referrals, urgent first, then by triage due time."""
    access = access_for(user)
    return (
        Referral.objects.filter(clinic_id__in=access.clinic_ids, status__in=WORKLIST_STATES)
        .select_related("practice", "clinic", "provider", "created_by")
        .order_by("-urgent", "triage_due_at", "created_at")
    )


#: What a referral's pages and services read of its provider and author: who they are, not their
#: account rows (password hash, sign-in times...).
_PERSON_FIELDS: Final = ("public_id", "full_name", "email", "is_active")


_REFERRAL_WITH_PARTIES_FIELDS: Final = (
    *field_names(Referral),
    *field_names(Organization, "practice__"),
    *field_names(Organization, "clinic__"),
    *field_names(ClinicSettings, "clinic__referral_settings__"),
    *field_names(Patient, "patient__"),
    *(f"{person}__{name}" for person in ("provider", "created_by") for name in _PERSON_FIELDS),
)


def _referrals_with_parties() -> QuerySet[Referral]:
    """Referrals joined to everything one referral's page shows about its parties."""
    return Referral.objects.select_related(
        "practice", "clinic__referral_settings", "provider", "created_by", "patient"
    ).only(*_REFERRAL_WITH_PARTIES_FIELDS)


def referral_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Referral:
    """One referral the user may see (for actions and edits; no PHI read is audited here)."""
    access = access_for(user)
    parsed = _as_uuid(public_id)
    referral = None
    if parsed is not None and access.user_id is not None:
        referral = (
            _referrals_with_parties().filter(_visible_filter(access), public_id=parsed).first()
        )
    if referral is None:
        if parsed is not None and Referral.objects.filter(public_id=parsed).exists():
            _audit_refused(user, "referral", parsed)
        raise NotFound()
    return referral


@dataclass(frozen=True)
class ReferralDetail:
    """A referral with everything its detail page and API response show."""

    referral: Referral
    prior_trials: list[PriorTrial]
    screening: Screening
    parties: frozenset[str]
    allowed_actions: list[str]
    overdue: bool
    triage_business_days: int
    fhir_task_status: str
    x360_transaction: str | None
    open_question: str | None
    possible_duplicates: list[Referral] | None
    thread: uuid.UUID | None


def referral_detail_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> ReferralDetail:
    """The referral with screening, allowed actions, SLA, interop codes; the PHI read is audited
    (object "referral", details ``{"referral", "patient"}``) before anything is returned."""
    referral = referral_get_for_user(user=user, public_id=public_id)
    access = access_for(user)
    now = timezone.now()
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="referral",
        object_id=referral.public_id,
        details={"referral": str(referral.public_id), "patient": str(referral.patient.public_id)},
    )
    trials = list(referral.prior_trials.all())
    clinic_settings = clinic_settings_for(referral.clinic)
    parties = permissions.referral_parties(access, referral)
    interop = transitions.INTEROP[referral.status]
    open_question = None
    if referral.status == ReferralStatus.INFO_REQUESTED:
        last_question = (
            referral.events.filter(kind="info_requested").order_by("-created_at", "-id").first()
        )
        open_question = last_question.note if last_question is not None else None
    duplicates = None
    if permissions.can_see_duplicates(access, referral):
        duplicates = list(referral_possible_duplicates(referral=referral))
    return ReferralDetail(
        referral=referral,
        prior_trials=trials,
        screening=compute_screening(referral, trials, clinic_settings),
        parties=parties,
        allowed_actions=transitions.allowed_actions(parties, referral, now),
        overdue=is_overdue(referral, now),
        triage_business_days=clinic_settings.triage_business_days,
        fhir_task_status=interop.fhir_task_status,
        x360_transaction=interop.x360_transaction,
        open_question=open_question,
        possible_duplicates=duplicates,
        thread=hooks.referral_thread_id(referral),
    )


def referral_allowed_actions_for_user(*, user: AnyUser, referral: Referral) -> list[str]:
    """What the user may do with the referral now (the list pages show buttons from it)."""
    access = access_for(user)
    parties = permissions.referral_parties(access, referral)
    return transitions.allowed_actions(parties, referral, timezone.now())


def referral_possible_duplicates(*, referral: Referral) -> QuerySet[Referral]:
    """Other referrals of the same practice whose patient has the same name and birth date
    (compared through the blind index): the practice is asked "is this the same patient?".
    Call it only for practice members (``permissions.can_see_duplicates``)."""
    index = referral.patient.identity_index
    if not index:
        return Referral.objects.none()
    return (
        Referral.objects.filter(practice_id=referral.practice_id, patient__identity_index=index)
        .exclude(pk=referral.pk)
        .select_related("patient")
        .order_by("-created_at")
    )


def patient_duplicates_for_user(
    *,
    user: AnyUser,
    practice: Organization,
    given_name: str,
    family_name: str,
    birth_date: datetime.date,
) -> QuerySet[Patient]:
    """Patients of ``practice`` with this name and birth date (normalised, through the blind
    index), for the wizard to ask "is this the same patient?" before a new one is created.
    Nothing for a user who is not a member of the practice."""
    access = access_for(user)
    if practice.pk not in access.practice_ids or not (given_name and family_name):
        return Patient.objects.none()
    index = patient_blind_index(blind_index_key(), given_name, family_name, birth_date.isoformat())
    return Patient.objects.filter(practice=practice, identity_index=index).order_by("-created_at")


def referral_events_for_user(*, user: AnyUser, referral: Referral) -> QuerySet[ReferralEvent]:
    """The timeline, oldest first; the notes are PHI, so the read is audited. ``referral`` must
    come from a selector for this user."""
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="referral",
        object_id=referral.public_id,
        details={"referral": str(referral.public_id), "view": "events"},
    )
    return referral.events.select_related("actor").order_by("created_at", "id")


def attachment_list_for_user(*, user: AnyUser, referral: Referral) -> QuerySet[Attachment]:
    """The referral's attachments (``referral`` from a selector for this user); the original
    file names are PHI, so the read is audited."""
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="referral",
        object_id=referral.public_id,
        details={"referral": str(referral.public_id), "view": "attachments"},
    )
    return referral.attachments.select_related("uploaded_by").order_by("created_at", "id")


def attachment_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Attachment:
    access = access_for(user)
    parsed = _as_uuid(public_id)
    attachment = None
    if parsed is not None and access.user_id is not None:
        visible = Referral.objects.filter(_visible_filter(access))
        attachment = (
            Attachment.objects.filter(public_id=parsed, referral__in=visible)
            .select_related("referral", "uploaded_by")
            .first()
        )
    if attachment is None:
        if parsed is not None and Attachment.objects.filter(public_id=parsed).exists():
            _audit_refused(user, "attachment", parsed)
        raise NotFound()
    return attachment


def attachment_open_for_user(
    *, user: AnyUser, public_id: uuid.UUID | str
) -> tuple[Attachment, EncryptedFileStream]:
    """The attachment and its decrypted bytes (checked against the stored SHA-256 by the
    encrypted storage, failing closed); the download is audited before any byte is read."""
    attachment = attachment_get_for_user(user=user, public_id=public_id)
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="attachment",
        object_id=attachment.public_id,
        details={"referral": str(attachment.referral.public_id), "view": "download"},
    )
    chunks = open_encrypted_file(
        attachment.stored_name,
        purpose=ATTACHMENT_PURPOSE,
        owner_id=str(attachment.public_id),
        expected_sha256=attachment.sha256,
    )
    return attachment, chunks


def practice_providers_for_user(*, user: AnyUser) -> QuerySet[User]:
    """The active providers of the practices where ``user`` is practice staff: the people staff
    may enter a referral for (the portal wizard's provider choice). Empty for anyone else."""
    access = access_for(user)
    staff_practices = [
        organization_id
        for organization_id, role in access.roles.items()
        if organization_id in access.practice_ids and role == Role.PRACTICE_STAFF
    ]
    if not staff_practices:
        return User.objects.none()
    return (
        User.objects.filter(
            is_active=True,
            memberships__organization_id__in=staff_practices,
            memberships__role=Role.PROVIDER,
            memberships__is_active=True,
        )
        .distinct()
        .order_by("full_name", "email")
    )
