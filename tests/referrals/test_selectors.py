"""Selectors the portal pages use: the clinic worklist and the wizard's duplicate check."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from referrals.selectors import (
    patient_duplicates_for_user,
    referral_allowed_actions_for_user,
    referral_worklist_for_user,
)
from tests.personas import Cast
from tests.referrals.factories import PatientFactory, referral_in_state


def test_the_worklist_puts_urgent_first_then_the_earliest_due(cast: Cast) -> None:
    now = timezone.now()
    later = referral_in_state(cast, "submitted", triage_due_at=now + datetime.timedelta(days=2))
    sooner = referral_in_state(cast, "in_review", triage_due_at=now + datetime.timedelta(hours=3))
    urgent = referral_in_state(
        cast, "submitted", urgent=True, triage_due_at=now + datetime.timedelta(days=1)
    )
    referral_in_state(cast, "draft")
    referral_in_state(cast, "closed")

    worklist = list(referral_worklist_for_user(user=cast.user("coordinator")))

    assert worklist == [urgent, sooner, later]
    assert list(referral_worklist_for_user(user=cast.user("provider"))) == []


@pytest.mark.parametrize(("persona", "found"), [("staff", True), ("outsider", False)])
def test_the_wizard_finds_the_same_patient_in_the_practice(
    cast: Cast, persona: str, found: bool
) -> None:
    patient = PatientFactory.create(practice=cast.practice, created_by=cast.user("provider"))

    matches = patient_duplicates_for_user(
        user=cast.user(persona),
        practice=cast.practice,
        given_name="dana ",
        family_name="EXAMPLE",
        birth_date=datetime.date(1984, 5, 17),
    )

    assert list(matches) == ([patient] if found else [])


def test_allowed_actions_for_pages(cast: Cast) -> None:
    referral = referral_in_state(cast, "submitted")
    assert referral_allowed_actions_for_user(user=cast.user("coordinator"), referral=referral) == [
        "review",
        "request-info",
        "decline",
    ]
    assert referral_allowed_actions_for_user(user=cast.user("staff"), referral=referral) == [
        "cancel"
    ]
    assert referral_allowed_actions_for_user(user=cast.user("outsider"), referral=referral) == []
