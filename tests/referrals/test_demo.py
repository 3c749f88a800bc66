"""``seed_demo`` adds referrals in every state, in both demo practices, through the services."""

from __future__ import annotations

from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import call_command

from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals import hooks
from referrals.demo import DEMO_REFERRALS
from referrals.models import Attachment, Patient, Referral, ReferralEvent, ReferralStatus

pytestmark = pytest.mark.django_db

LAKESIDE = "Lakeside Family Medicine"
ORLANDO = "Orlando Psychiatry Associates"


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def referral_of(given_name: str) -> Referral:
    """The demo referral whose patient has this given name (decrypted in Python)."""
    found = [
        r for r in Referral.objects.select_related("patient") if r.patient.given_name == given_name
    ]
    assert len(found) == 1
    return found[0]


def kinds(referral: Referral) -> list[str]:
    return list(referral.events.order_by("created_at", "id").values_list("kind", flat=True))


def counts() -> dict[str, int]:
    return {
        "referrals": Referral.objects.count(),
        "patients": Patient.objects.count(),
        "events": ReferralEvent.objects.count(),
        "attachments": Attachment.objects.count(),
        "notifications": Notification.objects.count(),
        "referral audit": AuditEvent.objects.filter(object_type="referral").count(),
    }


def test_every_state_is_present_in_both_practices() -> None:
    output = seed()

    statuses: dict[str, set[str]] = defaultdict(set)
    for practice, status in Referral.objects.values_list("practice__name", "status"):
        statuses[practice].add(status)
    assert statuses == {LAKESIDE: set(ReferralStatus.values), ORLANDO: set(ReferralStatus.values)}
    assert Referral.objects.count() == len(DEMO_REFERRALS) == 24
    assert "Demo referrals: 24 created, in every state across both practices." in output


def test_the_referrals_were_made_by_the_services_as_the_demo_users() -> None:
    seed()

    for referral in Referral.objects.all():
        events = kinds(referral)
        assert events[0] == "created"
        # Every transition left its audit event, in the same transaction as the change.
        audited = AuditEvent.objects.filter(object_id=str(referral.public_id), outcome="allowed")
        assert audited.filter(action="referral.created").count() == 1
        assert audited.filter(action="referral.submitted").count() == events.count("submitted")
        # messaging's hook made each referral's conversation.
        assert hooks.referral_thread_id(referral) is not None
    closed = referral_of("Oliver")
    assert kinds(closed) == [
        "created",
        "submitted",
        "reviewed",
        "accepted",
        "scheduled",
        "treatment_started",
        "completed",
        "closed",
    ]
    assert list(closed.events.values_list("actor__email", flat=True)) == [
        "pcp@lakeside.example",
        "pcp@lakeside.example",
        "coordinator@cfketamine.example",
        "coordinator@cfketamine.example",
        "coordinator@cfketamine.example",
        "clinician@cfketamine.example",
        "clinician@cfketamine.example",
        "pcp@lakeside.example",
    ]
    assert Notification.objects.filter(recipient__email="pcp@lakeside.example").exists()


def test_the_demo_shows_the_special_cases() -> None:
    seed()

    urgent = referral_of("Morgan")
    assert (urgent.status, urgent.urgent, urgent.suicidal_intent) == ("submitted", True, True)
    assert kinds(urgent) == ["created", "submitted", "urgent_alert"]

    on_behalf = referral_of("Jamal")
    assert on_behalf.created_by.email == "staff@lakeside.example"
    assert on_behalf.provider.email == "pcp@lakeside.example"
    assert on_behalf.provider_signed_off_at is None

    overdue = referral_of("Noah")
    assert overdue.status == "submitted"
    assert kinds(overdue) == ["created", "submitted", "overdue"]
    assert overdue.overdue_flagged_at is not None

    answered = referral_of("Amara")
    assert answered.status == "in_review"
    assert kinds(answered) == [
        "created",
        "attachment_added",
        "submitted",
        "reviewed",
        "info_requested",
        "answered",
    ]

    missed = referral_of("Leah")
    assert missed.status == "accepted"
    assert missed.consult_at is None
    assert kinds(missed)[-2:] == ["scheduled", "no_show"]

    declined = referral_of("Lucas")
    assert declined.decline_reason.startswith("The referral reports current psychotic features")
    assert declined.contraindications["psychosis"] is True

    incomplete = referral_of("Avery")
    assert incomplete.status == "draft"
    assert incomplete.episode_months is None


def test_seeding_twice_creates_no_duplicates() -> None:
    seed()
    first = counts()

    output = seed()

    assert counts() == first
    assert "Demo referrals: already present." in output
