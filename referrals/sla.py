"""Service levels: triage is due a number of business days (Monday to Friday) after submission.

Business days are counted in the clinic's time zone (``TIME_ZONE``), keeping the time of day: a
referral submitted on Friday at 15:00 with two business days is due on Tuesday at 15:00, and one
submitted on Saturday at 10:00 is due on Tuesday at 10:00. Public holidays are not modelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from referrals.models import Referral
from referrals.permissions import TRIAGE_STATES

SATURDAY = 5


def add_business_days(start: datetime, days: int) -> datetime:
    if timezone.is_naive(start):
        raise ValueError("start must be timezone-aware")
    local = timezone.localtime(start)
    remaining = days
    while remaining > 0:
        local = local + timedelta(days=1)
        if local.weekday() < SATURDAY:
            remaining -= 1
    # Re-localise so a daylight-saving change in between keeps the wall-clock time.
    return timezone.make_aware(local.replace(tzinfo=None), timezone.get_current_timezone())


def is_overdue(referral: Referral, now: datetime) -> bool:
    """Triage not finished (submitted or in review) after its due time."""
    return (
        referral.status in TRIAGE_STATES
        and referral.triage_due_at is not None
        and referral.triage_due_at < now
    )
