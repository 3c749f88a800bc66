"""``{% messages_nav %}`` for the header, ``{% referral_thread referral %}`` for referral pages.

``{% referral_thread referral %}`` renders ``messaging/_referral_thread.html``: the referral's
live conversation (the newest messages, the poller and the composer) for the signed-in user. It
renders nothing when the referral has no thread or the user does not take part in it (the
clinic, for a draft). Its context is ``conversation_context`` in ``messaging/views.py`` (thread,
messages, previous_cursor, newest_message, live, retractable, form) plus ``request`` and
``csrf_token``; a page may also ``{% include "messaging/_referral_thread.html" %}`` with those
variables set itself.
"""

from __future__ import annotations

from typing import Any

from django import template

from messaging import selectors
from messaging.views import conversation_context
from portal.accounts.models import User
from portal.api.errors import NotFound
from referrals.models import Referral

register = template.Library()


@register.inclusion_tag("messaging/_nav.html", takes_context=True)
def messages_nav(context: template.Context) -> dict[str, Any]:
    """The Messages link with the unread total: one membership read and one aggregate query."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        return {"show": False}
    return {"show": True, "unread_total": selectors.thread_unread_total_for_user(user=user)}


@register.inclusion_tag("messaging/_referral_thread.html", takes_context=True)
def referral_thread(context: template.Context, referral: Referral) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        return {"thread": None}
    try:
        thread = selectors.referral_thread_for_user(user=user, referral_id=referral.public_id)
    except NotFound:
        return {"thread": None}
    return {
        **conversation_context(user, thread),
        "request": request,
        "user": user,
        "csrf_token": context.get("csrf_token"),
    }
