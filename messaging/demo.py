"""Demo conversations for ``manage.py seed_demo`` (called after the demo referrals exist).

Each conversation is written through ``message_send`` as the demo user who would write it, so
the threads, read positions, audit events and notifications are the real thing. Idempotent: a
referral's conversation is added only while its thread has no user message yet, the general
thread only if the clinic's coordinator has not opened one with the practice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from django.db import transaction

from messaging import services
from messaging.models import MessageKind, Thread, ThreadKind
from portal.accounts.models import Membership, Organization, Role, User
from referrals.models import Referral, ReferralStatus

logger = logging.getLogger(__name__)

LAKESIDE: Final = "Lakeside Family Medicine"


@dataclass(frozen=True)
class Line:
    role: Role
    text: str


#: One conversation per referral state (the first Lakeside referral in that state).
CONVERSATIONS: Final[dict[ReferralStatus, tuple[Line, ...]]] = {
    ReferralStatus.IN_REVIEW: (
        Line(Role.PROVIDER, "Is there anything else you need from us before triage?"),
        Line(
            Role.COORDINATOR,
            "The attached letter covers it, thank you. We expect to decide by Thursday.",
        ),
    ),
    ReferralStatus.INFO_REQUESTED: (
        Line(
            Role.PRACTICE_STAFF,
            "The psychiatric evaluation is with the patient's psychiatrist; we expect it Monday.",
        ),
        Line(Role.COORDINATOR, "Thank you. We will keep the referral open until then."),
    ),
    ReferralStatus.ACCEPTED: (
        Line(
            Role.PROVIDER,
            "Should the patient keep taking bupropion until the consult, or stop it beforehand?",
        ),
    ),
    ReferralStatus.SCHEDULED: (
        Line(
            Role.COORDINATOR,
            "We confirmed the consult with the patient by phone. Please ask her to bring a "
            "current medication list.",
        ),
        Line(Role.PROVIDER, "Will do, thank you for the quick scheduling."),
    ),
    ReferralStatus.IN_TREATMENT: (
        Line(
            Role.CLINICIAN,
            "The first two infusions went well; blood pressure stayed below 150/95 throughout. "
            "The interim report follows after the sixth session.",
        ),
        Line(Role.PROVIDER, "Thank you. He told me he is sleeping better already."),
        Line(Role.CLINICIAN, "Good to hear; we will include sleep in the next assessment."),
    ),
}

GENERAL_SUBJECT: Final = "Sending records through the portal"
GENERAL_LINES: Final = (
    Line(
        Role.COORDINATOR,
        "From next month please send referral records through the portal rather than by fax; "
        "attachments here are encrypted and reach the whole care team.",
    ),
    Line(Role.PRACTICE_STAFF, "Understood, we will stop faxing records from the first."),
)


def _member(organization: Organization, role: Role) -> User | None:
    membership = (
        Membership.objects.filter(organization=organization, role=role, is_active=True)
        .select_related("user")
        .order_by("pk")
        .first()
    )
    return membership.user if membership is not None else None


def _say(thread: Thread, line: Line, practice: Organization, clinic: Organization) -> bool:
    organization = practice if line.role in {Role.PROVIDER, Role.PRACTICE_STAFF} else clinic
    author = _member(organization, line.role)
    if author is None:
        return False
    services.message_send(actor=author, thread=Thread.objects.get(pk=thread.pk), body=line.text)
    return True


def _referral_conversations(practice: Organization, clinic: Organization) -> int:
    added = 0
    for status, lines in CONVERSATIONS.items():
        referral = (
            Referral.objects.filter(practice=practice, clinic=clinic, status=status)
            .order_by("pk")
            .first()
        )
        if referral is None:
            continue
        thread = services.referral_thread_ensure(referral=referral)
        if thread.messages.filter(kind=MessageKind.USER).exists():
            continue
        for line in lines:
            _say(thread, line, practice, clinic)
        added += 1
    return added


def _general_conversation(practice: Organization, clinic: Organization) -> bool:
    coordinator = _member(clinic, Role.COORDINATOR)
    if coordinator is None:
        return False
    opened = Thread.objects.filter(
        kind=ThreadKind.GENERAL, practice=practice, clinic=clinic, created_by=coordinator
    )
    if opened.exists():
        return False
    first, *rest = GENERAL_LINES
    thread = services.thread_create(
        actor=coordinator,
        subject=GENERAL_SUBJECT,
        body=first.text,
        practice_id=practice.public_id,
        clinic_id=clinic.public_id,
    )
    for line in rest:
        _say(thread, line, practice, clinic)
    return True


def seed_demo(*, users: Mapping[str, User]) -> str:
    """Add the demo conversations that are not there yet; returns a line for the command."""
    clinic = Organization.objects.filter(kind=Organization.Kind.CLINIC).order_by("pk").first()
    practice = Organization.objects.filter(name=LAKESIDE, kind=Organization.Kind.PRACTICE).first()
    if clinic is None or practice is None or not users:
        return "Demo conversations: skipped (no demo clinic or practice)."
    with transaction.atomic():
        added = _referral_conversations(practice, clinic)
        general = _general_conversation(practice, clinic)
    logger.info("messaging.demo_seeded", extra={"conversations": added, "general": general})
    if not added and not general:
        return "Demo conversations: already present."
    return (
        f"Demo conversations: {added} on referrals"
        + (" and a general one" if general else "")
        + f" at {LAKESIDE}; one question still awaits the clinic's answer."
    )
