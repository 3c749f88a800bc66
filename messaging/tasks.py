"""Messaging's tasks: thin, ids only, idempotent (the work is in services.py)."""

from __future__ import annotations

from celery import shared_task

# A module reference: services.py imports this module back.
from messaging import services


@shared_task(name="messaging.notify_participants", ignore_result=True)
def notify_participants(message_id: int) -> None:
    """Tell a new message's thread about it (in-app and e-mail); a second run does nothing."""
    services.message_participants_notify(message_id=message_id)


@shared_task(name="messaging.notify_pending", ignore_result=True)
def notify_pending() -> None:
    """Periodic: the notifications of messages whose task the broker lost."""
    services.messages_notify_pending()


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
