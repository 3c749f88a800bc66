"""In-app notifications, each user's e-mail preference, and the e-mail outbox.

Nothing here holds PHI: a notification carries an event name, a reference number such as
"R-2026-00042" and a portal path made of public ids. The e-mail is built from those at send time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.core.models import BaseModel


class EmailMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately, one e-mail per update"
    DAILY_DIGEST = "daily_digest", "Once a day, one summary e-mail"


class NotificationPreference(BaseModel):
    """How a user wants to hear about updates by e-mail. No row means the default, immediate."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email_mode = models.CharField(
        max_length=16, choices=EmailMode.choices, default=EmailMode.IMMEDIATE
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email_mode__in=[mode.value for mode in EmailMode]),
                name="notification_preference_email_mode_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.email_mode}"


class EmailDelivery(BaseModel):
    """One e-mail to send: the outbox row is written first, a task sends it, a job re-drives it.

    ``key`` is the natural key ("notification:<public id>" or "digest:<user public id>:<date>"),
    so the same e-mail is never recorded twice; the send claims the row from ``pending`` before
    it talks to the mail server, so it is never sent twice either.
    """

    class Kind(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate"
        DIGEST = "digest", "Daily digest"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=100, unique=True)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_deliveries"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "e-mail deliveries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["immediate", "digest"]),
                name="email_delivery_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sending", "sent", "failed"]),
                name="email_delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False),
                name="email_delivery_sent_has_sent_at",
            ),
        ]
        indexes = [
            # The re-drive scans only what is not finished; sent rows (almost all) stay out.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=models.Q(status__in=["pending", "sending"]),
                name="email_delivery_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} e-mail {self.pk} ({self.status})"


class Notification(BaseModel):
    """An in-app notification for one user about one event on one referral (or report)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=64)
    reference = models.CharField(max_length=20)
    link = models.CharField(max_length=200)
    urgent = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    email_mode = models.CharField(max_length=16, choices=EmailMode.choices)
    email_delivery = models.ForeignKey(
        EmailDelivery,
        # RESTRICT: an outbox row is history and is never deleted on its own.
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="notifications",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email_mode__in=[mode.value for mode in EmailMode]),
                name="notification_email_mode_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "-created_at", "-id"], name="notification_inbox"),
            # The unread badge counts on every page: a small index over unread rows only.
            models.Index(
                fields=["recipient"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread",
            ),
            # The daily digest finds what still waits for it without scanning the history.
            models.Index(
                fields=["recipient"],
                condition=models.Q(
                    email_mode="daily_digest", email_delivery__isnull=True, read_at__isnull=True
                ),
                name="notification_digest_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.reference} for {self.recipient_id}"
