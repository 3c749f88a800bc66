"""Who may do what with a notification: only its recipient ever sees or changes it."""

from __future__ import annotations

from typing import Any

from portal.notifications.models import Notification


def is_recipient(user: Any, notification: Notification) -> bool:
    return bool(user.is_authenticated) and notification.recipient_id == user.pk
