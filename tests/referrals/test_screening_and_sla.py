"""Screening values (exact) and service levels (business days, overdue flag task)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals import services
from referrals.models import ClinicSettings, PriorTrial, Referral, ReferralEvent
from referrals.screening import compute_screening
from referrals.sla import add_business_days, is_overdue
from referrals.tasks import flag_overdue_referrals
from tests.personas import Cast
from tests.referrals.factories import PriorTrialFactory, referral_in_state

TZ = timezone.get_current_timezone()


def _trial(weeks: str, adherence: str = "good", outcome: str = "no_response") -> PriorTrial:
    return PriorTrial(weeks_at_dose=Decimal(weeks), adherence=adherence, outcome=outcome, drug="x")


@pytest.mark.parametrize(
    ("trials", "weeks", "expected_count", "expected_trd"),
    [
        ([_trial("8"), _trial("6", outcome="partial_response")], 4, 2, True),
        ([_trial("8"), _trial("3.5")], 4, 1, False),
        ([_trial("8"), _trial("3.5")], 3, 2, True),
        ([_trial("8"), _trial("8", adherence="partial")], 4, 1, False),
        ([_trial("8"), _trial("8", outcome="intolerance")], 4, 1, False),
        ([_trial("8"), _trial("8", outcome="response")], 4, 1, False),
        ([PriorTrial(drug="x"), _trial("8"), _trial("4")], 4, 2, True),  # incomplete row skipped
        ([], 4, 0, False),
    ],
)
def test_adequate_failed_trials_use_the_clinic_setting(
    cast: Cast, trials: list[PriorTrial], weeks: int, expected_count: int, expected_trd: bool
) -> None:
    referral = Referral(phq9_answers=[], contraindications={})
    screening = compute_screening(
        referral, trials, ClinicSettings(clinic=cast.clinic, adequate_trial_weeks=weeks)
    )
    assert (screening.adequate_failed_trials, screening.trd) == (expected_count, expected_trd)
    assert screening.adequate_trial_weeks == weeks


@pytest.mark.parametrize(
    ("answers", "intent", "total", "band", "safety"),
    [
        ([3, 3, 2, 3, 2, 2, 2, 1, 0], False, 18, "moderately_severe", False),
        ([0, 0, 0, 0, 0, 0, 0, 0, 1], False, 1, "minimal", True),
        ([3] * 9, False, 27, "severe", True),
        ([1, 1, 1, 1, 1, 0, 0, 0, 0], True, 5, "mild", True),
        ([None] * 8 + [2], False, None, None, True),  # item 9 alone already flags a draft
        ([1] * 8 + [None], False, None, None, False),
        ([], False, None, None, False),
    ],
)
def test_phq9_total_band_and_safety_flag(
    cast: Cast, answers: list[Any], intent: bool, total: int | None, band: str | None, safety: bool
) -> None:
    referral = Referral(phq9_answers=answers, suicidal_intent=intent, contraindications={})
    screening = compute_screening(referral, [], ClinicSettings(clinic=cast.clinic))
    assert (screening.phq9_total, screening.phq9_band, screening.safety_flag) == (
        total,
        band,
        safety,
    )


def test_contraindication_flags_list_the_yes_answers_in_checklist_order(cast: Cast) -> None:
    referral = Referral(
        phq9_answers=[],
        contraindications={"pregnancy": True, "psychosis": True, "substance_use_disorder": False},
    )
    screening = compute_screening(referral, [], ClinicSettings(clinic=cast.clinic))
    assert screening.contraindication_flags == ["psychosis", "pregnancy"]


def test_the_detail_uses_the_clinics_trial_weeks(cast: Cast) -> None:
    ClinicSettings.objects.create(clinic=cast.clinic, adequate_trial_weeks=10)
    referral = referral_in_state(cast, "submitted", trials=0)
    PriorTrialFactory.create(referral=referral, weeks_at_dose=Decimal("8"))
    PriorTrialFactory.create(referral=referral, weeks_at_dose=Decimal("12"), position=1)

    from tests.referrals.helpers import api_client

    body = api_client(cast, "coordinator").get(f"/api/v1/referrals/{referral.public_id}/").json()
    assert body["screening"]["adequate_failed_trials"] == 1
    assert body["screening"]["trd"] is False
    assert body["screening"]["adequate_trial_weeks"] == 10


# --- business days ---------------------------------------------------------------------------


def _local(day: int, hour: int) -> datetime.datetime:
    """A wall-clock time in March 2026 in the clinic's time zone (2 March is a Monday)."""
    return datetime.datetime(2026, 3, day, hour, 0, tzinfo=TZ)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        ((2, 9), 2, (4, 9)),  # Monday -> Wednesday
        ((5, 15), 2, (9, 15)),  # Thursday -> Monday
        ((6, 15), 2, (10, 15)),  # Friday -> Tuesday
        ((7, 10), 2, (10, 10)),  # Saturday -> Tuesday
        ((8, 10), 1, (9, 10)),  # Sunday -> Monday
        ((6, 15), 5, (13, 15)),  # a whole week
        # Across the DST change (8 March 2026 in New York): the wall-clock time is kept.
        ((6, 9), 1, (9, 9)),
    ],
)
def test_add_business_days(start: tuple[int, int], days: int, due: tuple[int, int]) -> None:
    result = add_business_days(_local(*start), days)
    assert timezone.localtime(result, TZ) == _local(*due)
    assert timezone.localtime(result, TZ).hour == due[1]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_days(datetime.datetime(2026, 3, 2, 9, 0), 2)  # noqa: DTZ001


def test_a_clinic_setting_changes_the_due_time(cast: Cast, time_machine: Any) -> None:
    ClinicSettings.objects.create(clinic=cast.clinic, triage_business_days=1)
    monday = _local(2, 9)
    time_machine.move_to(monday, tick=False)
    referral = referral_in_state(cast, "draft")

    submitted = services.referral_submit(actor=cast.user("provider"), referral=referral)

    assert submitted.triage_due_at == monday + datetime.timedelta(days=1)


# --- overdue ---------------------------------------------------------------------------------


def test_overdue_is_computed_for_triage_states_only(cast: Cast) -> None:
    now = timezone.now()
    past = now - datetime.timedelta(minutes=1)
    assert is_overdue(referral_in_state(cast, "submitted", triage_due_at=past), now)
    assert is_overdue(referral_in_state(cast, "in_review", triage_due_at=past), now)
    assert not is_overdue(referral_in_state(cast, "info_requested", triage_due_at=past), now)
    assert not is_overdue(referral_in_state(cast, "accepted", triage_due_at=past), now)
    assert not is_overdue(referral_in_state(cast, "submitted"), now)


def test_the_periodic_task_flags_overdue_referrals_once(cast: Cast) -> None:
    past = timezone.now() - datetime.timedelta(hours=1)
    overdue = referral_in_state(cast, "submitted", triage_due_at=past)
    referral_in_state(cast, "submitted")  # due tomorrow
    referral_in_state(cast, "accepted", triage_due_at=past)  # triage done

    flag_overdue_referrals.delay()
    flag_overdue_referrals.delay()

    assert list(
        ReferralEvent.objects.filter(kind="overdue").values_list("referral_id", "actor")
    ) == [(overdue.pk, None)]
    notifications = Notification.objects.filter(event="referral.overdue")
    assert [(n.recipient.email, n.reference) for n in notifications] == [
        ("coordinator@cast.example", overdue.number)
    ]
    assert AuditEvent.objects.filter(action="referral.overdue_flagged").count() == 1
    overdue.refresh_from_db()
    assert overdue.overdue_flagged_at is not None


def test_an_answer_restarts_the_clock_and_the_flag(cast: Cast) -> None:
    past = timezone.now() - datetime.timedelta(hours=1)
    referral = referral_in_state(cast, "in_review", triage_due_at=past)
    assert services.referral_flag_overdue() == 1
    services.referral_request_info(actor=cast.user("coordinator"), referral=referral, question="?")

    services.referral_submit(actor=cast.user("provider"), referral=referral, answer="Here.")

    referral.refresh_from_db()
    assert referral.overdue_flagged_at is None
    assert referral.triage_due_at is not None
    assert referral.triage_due_at > timezone.now()
    assert services.referral_flag_overdue() == 0
    assert services.referral_flag_overdue(now=referral.triage_due_at + datetime.timedelta(1)) == 1


def test_the_overdue_job_is_on_the_beat_schedule() -> None:
    from django.conf import settings

    from portal.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["referrals-flag-overdue"]
    assert entry["task"] == flag_overdue_referrals.name == "referrals.flag_overdue_referrals"
    assert entry["task"] in app.tasks
