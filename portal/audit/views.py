"""Portal pages: the audit trail for clinic admins, with filters, pages and a CSV export."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.accounts.models import User
from portal.api.errors import Forbidden
from portal.audit.exports import audit_events_csv_export
from portal.audit.forms import AuditEventFilterForm
from portal.audit.selectors import audit_event_list_for_user, audit_trail_check_access

PAGE_SIZE = 50


def _reviewer(request: HttpRequest) -> User:
    user = request.user
    try:
        audit_trail_check_access(user=user)
    except Forbidden as error:
        raise PermissionDenied(error.detail) from error
    if not isinstance(user, User):
        raise PermissionDenied
    return user


@require_GET
@login_required
def audit_event_list(request: HttpRequest) -> HttpResponse:
    user = _reviewer(request)
    form = AuditEventFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/event_list.html", {"form": form, "events": []}, status=400)
    events = audit_event_list_for_user(user=user, filters=form.filters())
    before = form.cleaned_data.get("before")
    if before is not None:
        events = events.filter(sequence__lt=before)
    # Keyset pages (older events before a sequence number): no COUNT over the whole trail.
    page = list(events[: PAGE_SIZE + 1])
    has_older = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    older_query = query.copy()
    if has_older:
        older_query["before"] = str(page[-1].sequence)
    return render(
        request,
        "audit/event_list.html",
        {
            "form": form,
            "events": page,
            "filter_query": query.urlencode(),
            "older_query": older_query.urlencode() if has_older else "",
            "is_first_page": before is None,
        },
    )


@require_GET
@login_required
def audit_event_export(request: HttpRequest) -> HttpResponseBase:
    user = _reviewer(request)
    form = AuditEventFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/event_list.html", {"form": form, "events": []}, status=400)
    filters = form.filters()
    events = audit_event_list_for_user(user=user, filters=filters)
    return audit_events_csv_export(actor=user, filters=filters, events=events)
