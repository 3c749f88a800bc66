"""Notifications: record them, send their e-mails through the outbox, and re-drive what is stuck.

``notify`` writes in-app rows and outbox rows inside the caller's transaction and asks a worker to
send the e-mails once it commits. If the broker is down at that moment nothing is lost: the outbox
row stays ``pending`` and ``email_deliveries_redrive`` (a periodic job) enqueues it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import partial

from celery.exceptions import Retry
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.api.errors import NotFound, ServiceError
from portal.audit.services import audit_record

# Imported as a module (not names): tasks.py imports this module back, and a module reference
# resolves at call time whichever of the two is imported first.
from portal.notifications import tasks
from portal.notifications.content import (
    EmailContent,
    digest_email,
    immediate_email,
    validate_event,
    validate_link,
    validate_reference,
)
from portal.notifications.models import (
    EmailDelivery,
    EmailMode,
    Notification,
    NotificationPreference,
)
from portal.notifications.permissions import is_recipient
from portal.notifications.retry import MAX_ATTEMPTS, is_transient, retry_delay

logger = logging.getLogger(__name__)


class DeliveryImpossible(Exception):
    """The e-mail cannot be sent however often it is tried (no recipient, nothing to say)."""


# A pending row this old was not picked up from the queue (the broker was down, the message lost).
REDRIVE_MIN_AGE = timedelta(minutes=1)
REDRIVE_BATCH_SIZE = 200
# A re-driven row waits this long before it is re-driven again, so a slow queue is not flooded.
REDRIVE_LEASE = timedelta(minutes=5)
# Longer than the task's hard time limit: a row still "sending" after this lost its worker.
SENDING_STALE_AFTER = timedelta(minutes=15)
SMTP_TIMEOUT_SECONDS = 30
# Publishing gives up quickly when the broker is down: the outbox row is the safety net.
ENQUEUE_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


# --- recording ---------------------------------------------------------------------------------


def notify(
    *,
    recipients: Iterable[User],
    event: str,
    reference: str,
    link: str,
    actor: User | None = None,
    urgent: bool = False,
) -> list[Notification]:
    """Record an in-app notification per recipient (never the actor) and queue their e-mails.

    Call it inside the service's transaction. ``reference`` is a number like "R-2026-00042" and
    ``link`` a portal path of public ids: both are checked, and ``ValueError`` is raised for
    anything else, so no free text can reach an e-mail. Recipients who chose the daily digest get
    their e-mail tomorrow, unless ``urgent``.
    """
    validate_event(event)
    validate_reference(reference)
    validate_link(link)
    unique: dict[int, User] = {}
    for user in recipients:
        if user.is_active and (actor is None or user.pk != actor.pk):
            unique.setdefault(user.pk, user)
    if not unique:
        return []
    # No savepoint: notify runs inside its caller's transaction, and an error here fails the
    # caller's work as a whole.
    with transaction.atomic(savepoint=False):
        chosen_modes = dict(
            NotificationPreference.objects.filter(user_id__in=list(unique)).values_list(
                "user_id", "email_mode"
            )
        )
        now = timezone.now()
        notifications: list[Notification] = []
        deliveries: list[EmailDelivery] = []
        for user in unique.values():
            mode = EmailMode.IMMEDIATE if urgent else chosen_modes.get(user.pk, EmailMode.IMMEDIATE)
            notification = Notification(
                recipient=user,
                event=event,
                reference=reference,
                link=link,
                urgent=urgent,
                email_mode=mode,
            )
            if mode == EmailMode.IMMEDIATE:
                delivery = EmailDelivery(
                    key=f"notification:{notification.public_id}",
                    recipient=user,
                    kind=EmailDelivery.Kind.IMMEDIATE,
                    next_attempt_at=now,
                )
                deliveries.append(delivery)
                notification.email_delivery = delivery
            notifications.append(notification)
        EmailDelivery.objects.bulk_create(deliveries)
        Notification.objects.bulk_create(notifications)
        if deliveries:
            transaction.on_commit(
                partial(enqueue_email_deliveries, [delivery.pk for delivery in deliveries])
            )
    return notifications


def enqueue_email_deliveries(delivery_ids: Sequence[int]) -> list[int]:
    """Hand deliveries to the queue; never raise. Returns the ids that were enqueued.

    Several deliveries go as one publish, a task that hands each of them to its own send task on
    a worker: a message that notifies thirty people costs its request one broker round trip, not
    thirty. A broker that is down must not fail the request that already committed its data: the
    rows stay pending and the re-drive sends them later.
    """
    ids = list(delivery_ids)
    if len(ids) <= 1:
        return publish_email_deliveries(ids)
    try:
        tasks.send_email_deliveries.apply_async(
            args=(ids,), retry=True, retry_policy=ENQUEUE_RETRY_POLICY
        )
    except Exception as error:  # any broker or transport error: the outbox keeps the rows
        logger.warning(
            "notifications.enqueue_failed",
            extra={"deliveries": ids, "error": type(error).__name__},
        )
        return []
    return ids


def publish_email_deliveries(delivery_ids: Sequence[int]) -> list[int]:
    """One send task per delivery; never raises. Returns the ids that were enqueued.

    After the first failure the rest are not tried, since the broker is evidently unreachable;
    their rows stay pending for the re-drive.
    """
    enqueued: list[int] = []
    for position, delivery_id in enumerate(delivery_ids):
        try:
            tasks.send_email_delivery.apply_async(
                args=(delivery_id,), retry=True, retry_policy=ENQUEUE_RETRY_POLICY
            )
        except Retry:
            # Only in eager mode (development, tests): the task ran in-process, failed transiently
            # and put its row back to pending with a backoff; the re-drive picks it up.
            pass
        except Exception as error:  # any broker or transport error: the outbox keeps the row
            logger.warning(
                "notifications.enqueue_failed",
                extra={
                    "deliveries": list(delivery_ids[position:]),
                    "error": type(error).__name__,
                },
            )
            break
        enqueued.append(delivery_id)
    return enqueued


# --- in-app state ------------------------------------------------------------------------------


def notification_mark_read(*, actor: User, notification: Notification) -> Notification:
    """Mark one of the actor's notifications read; the first read time is kept."""
    if not is_recipient(actor, notification):
        raise NotFound()
    if notification.read_at is not None:
        return notification
    now = timezone.now()
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=now, updated_at=now
        )
        if updated:
            audit_record(
                actor=actor,
                action="notification.read",
                object_type="notification",
                object_id=notification.public_id,
            )
    if updated:
        notification.read_at = now
    else:
        notification.refresh_from_db(fields=["read_at", "updated_at"])
    return notification


def notification_mark_all_read(*, actor: User) -> int:
    """Mark every unread notification of the actor read; returns how many changed."""
    now = timezone.now()
    with transaction.atomic():
        marked = Notification.objects.filter(recipient_id=actor.pk, read_at__isnull=True).update(
            read_at=now, updated_at=now
        )
        if marked:
            audit_record(
                actor=actor,
                action="notification.read_all",
                object_type="notification",
                object_id=None,
                details={"count": marked},
            )
    return marked


def notification_preference_update(*, actor: User, email_mode: str) -> NotificationPreference:
    """Set how the actor hears about updates by e-mail: immediately or in a daily digest."""
    if email_mode not in EmailMode.values:
        raise ServiceError(
            f"email_mode must be one of: {', '.join(EmailMode.values)}.", code="invalid"
        )
    with transaction.atomic():
        preference, _created = NotificationPreference.objects.update_or_create(
            user_id=actor.pk, defaults={"email_mode": email_mode}
        )
        audit_record(
            actor=actor,
            action="notification.preference_updated",
            object_type="notification_preference",
            object_id=preference.public_id,
            details={"email_mode": email_mode},
        )
    return preference


# --- the outbox --------------------------------------------------------------------------------


def _error_summary(error: BaseException) -> str:
    """The class and code only: server replies may echo addresses, and messages are not needed."""
    code = getattr(error, "smtp_code", None) or getattr(error, "errno", None)
    return f"{type(error).__name__} {code}".strip() if code else type(error).__name__


def _claim(delivery_id: int) -> EmailDelivery | None:
    """Take a pending row for sending, or None if it is sent, failed or taken by another worker."""
    with transaction.atomic():
        delivery = (
            EmailDelivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status=EmailDelivery.Status.PENDING)
            .first()
        )
        if delivery is None:
            return None
        delivery.status = EmailDelivery.Status.SENDING
        delivery.attempts += 1
        delivery.claimed_at = timezone.now()
        delivery.save(update_fields=["status", "attempts", "claimed_at", "updated_at"])
    return delivery


def _content(delivery: EmailDelivery) -> EmailContent:
    covered = list(delivery.notifications.order_by("created_at", "id").only("reference", "link"))
    if not covered:
        raise DeliveryImpossible("the delivery covers no notification")
    if delivery.kind == EmailDelivery.Kind.DIGEST:
        return digest_email(
            references=[notification.reference for notification in covered],
            update_count=len(covered),
        )
    return immediate_email(reference=covered[0].reference, link=covered[0].link)


def _finish(delivery: EmailDelivery, *, status: str, error: BaseException | None = None) -> None:
    now = timezone.now()
    delivery.status = status
    update_fields = ["status", "updated_at"]
    if status == EmailDelivery.Status.SENT:
        delivery.sent_at = now
        update_fields.append("sent_at")
    if error is not None:
        delivery.last_error = _error_summary(error)[:200]
        update_fields.append("last_error")
    if status == EmailDelivery.Status.PENDING:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
        update_fields.append("next_attempt_at")
    with transaction.atomic():
        delivery.save(update_fields=update_fields)


def email_delivery_send(*, delivery_id: int) -> EmailDelivery | None:
    """Send one outbox e-mail at most once. Running it again for a finished row does nothing.

    The row is claimed (pending -> sending) in its own short transaction, so no database lock is
    held while the mail server is talked to. A transient failure puts the row back to pending and
    re-raises, for the task to retry after ``retry_delay``; a permanent one (or the last attempt)
    marks it failed.
    """
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    recipient = User.objects.only("email", "is_active").get(pk=delivery.recipient_id)
    try:
        if not recipient.is_active:
            raise DeliveryImpossible("the recipient's account is inactive")
        content = _content(delivery)
        message = EmailMultiAlternatives(
            subject=content.subject,
            body=content.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient.email],
            connection=get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT_SECONDS),
        )
        message.attach_alternative(content.html, "text/html")
        message.send(fail_silently=False)
    except Exception as error:
        retry = is_transient(error) and delivery.attempts < MAX_ATTEMPTS
        _finish(
            delivery,
            status=EmailDelivery.Status.PENDING if retry else EmailDelivery.Status.FAILED,
            error=error,
        )
        log_fields = {
            "delivery": delivery.pk,
            "attempts": delivery.attempts,
            "error": delivery.last_error,
        }
        if retry:
            logger.warning("notifications.email_retry", extra=log_fields)
            raise
        logger.error("notifications.email_failed", extra=log_fields)
        return delivery
    _finish(delivery, status=EmailDelivery.Status.SENT)
    logger.info(
        "notifications.email_sent", extra={"delivery": delivery.pk, "attempts": delivery.attempts}
    )
    return delivery


def email_deliveries_redrive(
    *, batch_size: int = REDRIVE_BATCH_SIZE, now: datetime | None = None
) -> list[int]:
    """Enqueue again what is still pending a minute after it was recorded; returns the ids.

    Rows whose worker died while sending (still "sending" long after every time limit) go back to
    pending first; a row may then be sent twice, which is better than never for an e-mail that
    says only "there is an update".
    """
    now = now or timezone.now()
    with transaction.atomic():
        stale = EmailDelivery.objects.filter(
            status=EmailDelivery.Status.SENDING, claimed_at__lt=now - SENDING_STALE_AFTER
        )
        stale.filter(attempts__gte=MAX_ATTEMPTS).update(
            status=EmailDelivery.Status.FAILED,
            last_error="interrupted while sending",
            updated_at=now,
        )
        stale.update(
            status=EmailDelivery.Status.PENDING,
            last_error="interrupted while sending",
            next_attempt_at=now,
            updated_at=now,
        )
        due = list(
            EmailDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                status=EmailDelivery.Status.PENDING,
                created_at__lte=now - REDRIVE_MIN_AGE,
                next_attempt_at__lte=now,
            )
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:batch_size]
        )
        if due:
            EmailDelivery.objects.filter(pk__in=due).update(
                next_attempt_at=now + REDRIVE_LEASE, updated_at=now
            )
    if due:
        logger.info("notifications.redrive", extra={"deliveries": due})
        enqueue_email_deliveries(due)
    return due


def email_digests_create(*, day: date | None = None) -> list[int]:
    """Record one digest e-mail per user with updates waiting for it; returns the delivery ids.

    One digest per user per day (the natural key), so running the job twice sends nothing more;
    updates arriving after today's digest wait for tomorrow's. Updates already read in the portal
    are left out.
    """
    day = day or timezone.localdate()
    waiting = Notification.objects.filter(
        email_mode=EmailMode.DAILY_DIGEST, email_delivery__isnull=True, read_at__isnull=True
    )
    recipients = list(
        waiting.order_by("recipient_id")
        .values_list("recipient_id", "recipient__public_id")
        .distinct()
    )
    created: list[int] = []
    for recipient_id, recipient_public_id in recipients:
        with transaction.atomic():
            delivery, is_new = EmailDelivery.objects.get_or_create(
                key=f"digest:{recipient_public_id}:{day.isoformat()}",
                defaults={
                    "recipient_id": recipient_id,
                    "kind": EmailDelivery.Kind.DIGEST,
                    "next_attempt_at": timezone.now(),
                },
            )
            if not is_new:
                continue
            covered = waiting.filter(recipient_id=recipient_id).update(
                email_delivery=delivery, updated_at=timezone.now()
            )
            if not covered:
                # Everything was read in the meantime: nothing to tell.
                delivery.delete()
                continue
            transaction.on_commit(partial(enqueue_email_deliveries, [delivery.pk]))
        created.append(delivery.pk)
    logger.info("notifications.digests_created", extra={"count": len(created)})
    return created
