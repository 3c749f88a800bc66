"""Referral tasks: thin, no PHI in arguments; the work is in services.py."""

from __future__ import annotations

from celery import shared_task

from referrals import services


@shared_task(name="referrals.flag_overdue_referrals", ignore_result=True)
def flag_overdue_referrals() -> None:
    """Periodic: tell the coordinators about referrals whose triage is overdue, once each."""
    services.referral_flag_overdue()
