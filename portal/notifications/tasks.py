"""Notification tasks: thin, ids only, idempotent; the work is in services.py."""

from __future__ import annotations

from celery import shared_task

# A module reference (see the note in services.py on the import cycle).
from portal.notifications import retry, services


@shared_task(
    name="notifications.send_email_delivery",
    ignore_result=True,
    # Every smtplib error and every socket error is an OSError; the service re-raises only the
    # transient ones (a 5xx reply is recorded as failed and not retried).
    autoretry_for=(OSError,),
    max_retries=retry.MAX_ATTEMPTS - 1,
    retry_backoff=retry.RETRY_BACKOFF_SECONDS,
    retry_backoff_max=retry.RETRY_BACKOFF_MAX_SECONDS,
    # No jitter: the retries then span the same half hour that the delivery row records.
    retry_jitter=False,
)
def send_email_delivery(delivery_id: int) -> None:
    """Send one outbox e-mail; a second run for the same id sends nothing."""
    services.email_delivery_send(delivery_id=delivery_id)


@shared_task(name="notifications.send_email_deliveries", ignore_result=True)
def send_email_deliveries(delivery_ids: list[int]) -> None:
    """Hand several outbox e-mails to one send task each (a request publishes this task once)."""
    services.publish_email_deliveries(delivery_ids)


@shared_task(name="notifications.redrive_pending_deliveries", ignore_result=True)
def redrive_pending_deliveries() -> None:
    """Periodic: enqueue again the deliveries that were recorded but never picked up."""
    services.email_deliveries_redrive()


@shared_task(name="notifications.send_daily_digests", ignore_result=True)
def send_daily_digests() -> None:
    """Daily: one summary e-mail per user who chose the digest and has updates waiting."""
    services.email_digests_create()
