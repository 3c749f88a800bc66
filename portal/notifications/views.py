"""Portal pages: the notification list and the e-mail preference."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.accounts.models import User
from portal.api.errors import NotFound
from portal.notifications.forms import NotificationPreferenceForm
from portal.notifications.models import Notification
from portal.notifications.selectors import (
    notification_get_for_user,
    notification_list_for_user,
    notification_preference_for_user,
)
from portal.notifications.services import (
    notification_mark_all_read,
    notification_mark_read,
    notification_preference_update,
)

PAGE_SIZE = 50


def _signed_in_user(request: HttpRequest) -> User:
    # login_required guarantees it; the check narrows the type.
    if not isinstance(request.user, User):
        raise Http404
    return request.user


def _own_notification(user: User, notification_id: uuid.UUID | str) -> Notification:
    try:
        return notification_get_for_user(user=user, public_id=notification_id)
    except NotFound as error:
        raise Http404 from error


@require_GET
@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    before_id = request.GET.get("before")
    before = _own_notification(user, before_id) if before_id else None
    rows = list(notification_list_for_user(user=user, before=before)[: PAGE_SIZE + 1])
    page, has_older = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    context = {
        "notifications": page,
        "older_cursor": page[-1].public_id if has_older else None,
        "is_first_page": before is None,
    }
    return render(request, "notifications/list.html", context)


@require_POST
@login_required
def notification_read(request: HttpRequest, notification_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    notification = _own_notification(user, notification_id)
    notification_mark_read(actor=user, notification=notification)
    return redirect("notifications:list")


@require_POST
@login_required
def notification_open(request: HttpRequest, notification_id: uuid.UUID) -> HttpResponse:
    """Mark read and go to what the notification is about (a POST: reading changes state)."""
    user = _signed_in_user(request)
    notification = _own_notification(user, notification_id)
    notification_mark_read(actor=user, notification=notification)
    # The link was checked to be a portal path when it was recorded; checked again here anyway.
    if not url_has_allowed_host_and_scheme(notification.link, allowed_hosts=None):
        return redirect("notifications:list")
    return HttpResponseRedirect(notification.link)


@require_POST
@login_required
def notification_read_all(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    marked = notification_mark_all_read(actor=user)
    messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
    return redirect("notifications:list")


@require_http_methods(["GET", "POST"])
@login_required
def notification_preferences(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if request.method == "POST":
        form = NotificationPreferenceForm(request.POST)
        if form.is_valid():
            notification_preference_update(actor=user, email_mode=form.cleaned_data["email_mode"])
            messages.success(request, "Your notification preference is saved.")
            return redirect("notifications:preferences")
        return render(request, "notifications/preferences.html", {"form": form}, status=400)
    preference = notification_preference_for_user(user=user)
    form = NotificationPreferenceForm(initial={"email_mode": preference.email_mode})
    return render(request, "notifications/preferences.html", {"form": form})
