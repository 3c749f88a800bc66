"""Reads of notifications, always scoped to the asking user."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from portal.api.errors import NotFound
from portal.audit.services import audit_denied
from portal.notifications.models import EmailMode, Notification, NotificationPreference


def notification_list_for_user(
    *, user: Any, before: Notification | None = None
) -> QuerySet[Notification]:
    """The user's own notifications, newest first; with ``before``, only those older than it."""
    notifications = Notification.objects.filter(recipient_id=user.pk)
    if before is not None:
        notifications = notifications.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.pk)
        )
    return notifications.order_by("-created_at", "-id")


def notification_get_for_user(*, user: Any, public_id: uuid.UUID | str) -> Notification:
    """One of the user's notifications; someone else's answers exactly like a missing one."""
    try:
        return Notification.objects.get(recipient_id=user.pk, public_id=public_id)
    except (ValidationError, ValueError) as error:
        raise NotFound() from error
    except Notification.DoesNotExist as error:
        # Someone else's notification: the denial is audited (a missing one is not, so guesses
        # cannot flood the trail), and the answer is the same as for a missing one.
        if Notification.objects.filter(public_id=public_id).exists():
            audit_denied(
                actor=user if user.is_authenticated else None,
                action="notification.access",
                object_type="notification",
                object_id=public_id,
            )
        raise NotFound() from error


def notification_unread_count_for_user(*, user: Any) -> int:
    """One COUNT over the user's unread rows (a partial index keeps it small)."""
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def notification_preference_for_user(*, user: Any) -> NotificationPreference:
    """The user's preference, or the unsaved default (immediate) when they never chose."""
    preference = NotificationPreference.objects.filter(user_id=user.pk).first()
    if preference is None:
        return NotificationPreference(user_id=user.pk, email_mode=EmailMode.IMMEDIATE)
    return preference
