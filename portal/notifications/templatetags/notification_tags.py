"""``{% notifications_badge %}`` for the header and ``|event_title`` for notification lists."""

from __future__ import annotations

from typing import Any

from django import template

from portal.notifications import content
from portal.notifications.selectors import notification_unread_count_for_user

register = template.Library()


@register.inclusion_tag("notifications/_badge.html", takes_context=True)
def notifications_badge(context: template.Context) -> dict[str, Any]:
    """The header link with the unread count: one COUNT query, only where the tag is rendered."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show": False}
    return {"show": True, "unread_count": notification_unread_count_for_user(user=user)}


@register.filter
def event_title(event: str) -> str:
    return content.event_title(event)
