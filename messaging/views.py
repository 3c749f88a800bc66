"""Portal pages: the inbox, the live thread page, the composer, and the retention setting.

The thread page stays current without reloading: a poller (``hx-get`` every 5 seconds, and at
once after the user sends) asks ``updates/?since=<newest message id on the page>`` and appends
what is new; each answer replaces the hidden ``since`` input out of band, so the next poll asks
from there, and triggers the read marker, which posts the read position. Everything works
without JavaScript too (forms post and redirect). No inline script: htmx only, under the CSP.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from messaging import permissions, selectors, services
from messaging.forms import MessageForm, NewThreadForm, RetentionPolicyForm
from messaging.models import Message, Thread
from portal.accounts.models import Organization, User
from portal.api.errors import NotFound, ServiceError
from portal.core.downloads import file_download_response
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from portal.uploads import UploadRejected
from referrals.permissions import access_for

INBOX_PAGE_SIZE = 25
THREAD_PAGE_SIZE = 50


def _signed_in_user(request: HttpRequest) -> User:
    # login_required guarantees it; the check narrows the type.
    if not isinstance(request.user, User):
        raise Http404
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _thread_or_404(user: User, thread_id: uuid.UUID | str) -> Thread:
    try:
        return selectors.thread_get_for_user(user=user, public_id=thread_id)
    except NotFound as error:
        raise Http404 from error


def _retractable(user: User, messages: Sequence[Message]) -> set[uuid.UUID]:
    access = access_for(user)
    now = timezone.now()
    return {
        message.public_id for message in messages if permissions.can_retract(access, message, now)
    }


def conversation_context(
    user: User,
    thread: Thread,
    *,
    cursor: str | None = None,
    form: MessageForm | None = None,
) -> dict[str, Any]:
    """What ``messaging/_conversation.html`` needs (the thread page and the referral page):

    ``thread``; ``messages`` (oldest first); ``previous_cursor`` (older messages exist);
    ``newest_message`` (the poller's ``since``, None for an empty thread); ``live`` (False
    when showing an older page: no poller, no composer); ``retractable`` (ids of the user's
    messages still inside the retraction window); ``form`` (the composer).
    """
    page = selectors.message_list_for_thread(
        user=user, thread=thread, cursor=cursor, page_size=THREAD_PAGE_SIZE, newest=True
    )
    live = cursor is None or page.next_cursor is None
    return {
        "thread": thread,
        "messages": page.messages,
        "previous_cursor": page.previous_cursor,
        "newest_message": page.messages[-1] if page.messages else None,
        "live": live,
        "retractable": _retractable(user, page.messages),
        "form": form or MessageForm(),
    }


@require_GET
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    paginator = Paginator(selectors.thread_list_for_user(user=user), INBOX_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    threads = list(page.object_list)
    selectors.threads_reveal(user=user, threads=threads)
    return render(request, "messaging/inbox.html", {"threads": threads, "page": page})


@require_GET
@login_required
def thread_detail(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    thread = _thread_or_404(user, thread_id)
    try:
        context = conversation_context(user, thread, cursor=request.GET.get("cursor") or None)
    except ServiceError:
        return HttpResponseBadRequest("That link to earlier messages is not valid.")
    return render(request, "messaging/thread.html", context)


@require_GET
@login_required
def thread_updates(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    """The messages after ``since`` as list items (204 when there are none), with the next
    ``since`` swapped in out of band."""
    user = _signed_in_user(request)
    thread = _thread_or_404(user, thread_id)
    try:
        page = selectors.message_list_for_thread(
            user=user,
            thread=thread,
            since=request.GET.get("since") or None,
            page_size=selectors.MAX_PAGE_SIZE,
        )
    except ServiceError:
        return HttpResponseBadRequest("since is not valid.")
    if not page.messages:
        return HttpResponse(status=204)
    context = {
        "thread": thread,
        "messages": page.messages,
        "newest_message": page.messages[-1],
        "retractable": _retractable(user, page.messages),
    }
    response = render(request, "messaging/_updates.html", context)
    # After the swap, so the read marker posts the new position (its input was just replaced).
    response["HX-Trigger-After-Swap"] = "messages-arrived"
    return response


def _error_field(form: MessageForm, error: ServiceError) -> str | None:
    """The form field a service error is about (None: the form as a whole)."""
    if isinstance(error, UploadRejected):
        return "attachments"
    field = next(iter(error.extra.get("fields") or {}), None)
    return field if field in form.fields else None


def _composer_response(
    request: HttpRequest, thread: Thread, form: MessageForm, *, sent: bool
) -> HttpResponse:
    response = render(request, "messaging/_composer.html", {"thread": thread, "form": form})
    if sent:
        # The poller fetches the new message at once instead of within five seconds.
        response["HX-Trigger"] = "messages-changed"
    return response


@require_POST
@login_required
def message_send(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    thread = _thread_or_404(user, thread_id)
    form = MessageForm(request.POST, request.FILES)
    sent = False
    if form.is_valid():
        try:
            services.message_send(
                actor=user,
                thread=thread,
                body=form.cleaned_data["body"],
                attachments=form.cleaned_data["attachments"],
            )
        except NotFound as error:
            raise Http404 from error
        except ServiceError as error:
            form.add_error(_error_field(form, error), str(error.detail))
        else:
            sent = True
    if _is_htmx(request):
        # htmx swaps only 2xx answers: the form comes back with its errors and the text kept.
        return _composer_response(request, thread, MessageForm() if sent else form, sent=sent)
    if sent:
        return redirect(reverse("messaging:thread", args=[thread.public_id]) + "#composer")
    context = conversation_context(user, thread, form=form)
    return render(request, "messaging/thread.html", context, status=400)


@require_POST
@login_required
def thread_read(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    thread = _thread_or_404(user, thread_id)
    through = None
    through_id = request.POST.get("through") or ""
    if through_id:
        try:
            through = Message.objects.filter(
                thread_id=thread.pk, public_id=uuid.UUID(through_id)
            ).first()
        except ValueError:
            through = None
        if through is None:
            return HttpResponseBadRequest("Unknown message.")
    try:
        services.thread_mark_read(actor=user, thread=thread, through=through)
    except NotFound as error:
        raise Http404 from error
    if _is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = "messages-read"
        return response
    return redirect("messaging:thread", thread.public_id)


@require_POST
@login_required
def message_retract(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    try:
        message = selectors.message_get_for_user(user=user, public_id=message_id)
        message = services.message_retract(actor=user, message=message)
        error = ""
    except NotFound as not_found:
        raise Http404 from not_found
    except ServiceError as refused:
        error = str(refused.detail)
    if _is_htmx(request):
        message = Message.objects.select_related("author").get(pk=message.pk)
        context = {
            "message": message,
            "retractable": _retractable(user, [message]),
            "retract_error": error,
        }
        return render(request, "messaging/_message.html", context)
    if error:
        flash.error(request, error)
    return redirect("messaging:thread", message.thread.public_id)


@require_GET
@login_required
def attachment_download(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponseBase:
    user = _signed_in_user(request)
    try:
        attachment, chunks = selectors.message_attachment_open_for_user(
            user=user, public_id=attachment_id
        )
    except NotFound as error:
        raise Http404 from error
    except (DecryptionError, EncryptedFileMissing):
        return HttpResponse("The file failed its integrity check and was not sent.", status=500)
    return file_download_response(
        chunks,
        content_type=attachment.content_type,
        filename=attachment.original_name,
        size=attachment.size,
    )


@require_http_methods(["GET", "POST"])
@login_required
def thread_new(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    access = access_for(user)
    # Clinic staff choose the practice; so does someone in several practices.
    practices = None
    if access.clinic_ids or len(access.practice_ids) > 1:
        practices = Organization.objects.filter(kind=Organization.Kind.PRACTICE).order_by("name")
        if not access.clinic_ids:
            practices = practices.filter(pk__in=access.practice_ids)
    if request.method == "POST":
        form = NewThreadForm(request.POST, request.FILES, practices=practices)
        if form.is_valid():
            practice = form.cleaned_data.get("practice")
            try:
                thread = services.thread_create(
                    actor=user,
                    subject=form.cleaned_data["subject"],
                    body=form.cleaned_data["body"],
                    practice_id=practice.public_id if practice is not None else None,
                    attachments=form.cleaned_data["attachments"],
                )
            except ServiceError as error:
                form.add_error(_error_field(form, error), str(error.detail))
            else:
                return redirect("messaging:thread", thread.public_id)
        status = 400
    else:
        form = NewThreadForm(practices=practices)
        status = 200
    return render(request, "messaging/thread_new.html", {"form": form}, status=status)


@require_GET
@login_required
def nav_badge(request: HttpRequest) -> HttpResponse:
    """The header's Messages link with the unread total (refreshed after marking read)."""
    user = _signed_in_user(request)
    total = selectors.thread_unread_total_for_user(user=user)
    return render(request, "messaging/_nav.html", {"show": True, "unread_total": total})


@require_http_methods(["GET", "POST"])
@login_required
def retention_settings(request: HttpRequest) -> HttpResponse:
    """Clinic admins set their clinic's message retention (404 for everyone else)."""
    user = _signed_in_user(request)
    clinics = selectors.retention_clinics_for_user(user=user)
    if not clinics:
        raise Http404
    clinic = clinics[0]
    if len(clinics) > 1:
        chosen = request.GET.get("clinic") or request.POST.get("clinic")
        clinic = next((c for c in clinics if str(c.public_id) == chosen), clinics[0])
    policy = selectors.retention_policy_for_clinic(clinic=clinic)
    status = 200
    if request.method == "POST":
        form = RetentionPolicyForm(request.POST)
        if form.is_valid():
            try:
                services.retention_policy_set(
                    actor=user,
                    clinic=clinic,
                    message_retention_days=form.cleaned_data["message_retention_days"],
                    archive_grace_days=form.cleaned_data["archive_grace_days"],
                )
            except ServiceError as error:
                form.add_error(None, str(error.detail))
            else:
                flash.success(request, "The message retention was saved.")
                redirect_to = reverse("messaging:retention")
                if len(clinics) > 1:
                    redirect_to += f"?clinic={clinic.public_id}"
                return HttpResponseRedirect(redirect_to)
        status = 400
    else:
        form = RetentionPolicyForm(
            initial={
                "message_retention_days": policy.message_retention_days,
                "archive_grace_days": policy.archive_grace_days,
            }
        )
    context = {"form": form, "clinic": clinic, "clinics": clinics}
    return render(request, "messaging/retention.html", context, status=status)
