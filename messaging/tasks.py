"""Messaging's periodic jobs: thin, no arguments, idempotent (the work is in services.py)."""

from __future__ import annotations

from celery import shared_task

from messaging import services


@shared_task(name="messaging.escalate_unread", ignore_result=True)
def escalate_unread() -> None:
    """Tell coordinators about practice messages unread at the clinic for 24 hours (once each)."""
    services.messages_escalate_unread()


@shared_task(name="messaging.apply_retention", ignore_result=True)
def apply_retention() -> None:
    """Archive messages past their clinic's retention, then purge archives past the grace
    period; legal holds are kept. Batched and resumable, so a run cut short loses nothing."""
    services.messages_archive_expired()
    services.archived_messages_purge()
