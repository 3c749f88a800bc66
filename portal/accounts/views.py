"""Identity pages: invitations (send, revoke, resend, accept), members, ending sessions."""

from __future__ import annotations

import uuid

from allauth.account.internal.flows.login import record_authentication
from allauth.account.utils import perform_login
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.accounts import permissions, selectors, services
from portal.accounts.forms import (
    InvitationAcceptForm,
    InvitationCreateForm,
    PracticeCreateForm,
    SessionEndForm,
)
from portal.accounts.models import Invitation, User
from portal.api.errors import NotFound, ServiceError

# The token moves from the link into the session at once, so it never stays in the address bar,
# the browser history or a Referer header of the page that asks for the password.
INVITATION_SESSION_KEY = "portal.invitation.token"


def _signed_in_user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not permissions.is_signed_in(user):
        raise PermissionDenied
    return user


def _invitations_page(
    request: HttpRequest,
    *,
    invitation_form: InvitationCreateForm | None = None,
    practice_form: PracticeCreateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _signed_in_user(request)
    organizations = selectors.organization_list_invitable_for_user(user=user)
    context = {
        "invitations": selectors.invitation_list_for_user(user=user),
        "form": invitation_form or InvitationCreateForm(organizations=organizations),
        "practice_form": (
            (practice_form or PracticeCreateForm())
            if permissions.can_create_practice(user)
            else None
        ),
    }
    return render(request, "accounts/invitation_list.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def invitation_list(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if not permissions.can_manage_invitations(user):
        raise PermissionDenied
    if request.method == "GET":
        return _invitations_page(request)
    organizations = selectors.organization_list_invitable_for_user(user=user)
    form = InvitationCreateForm(request.POST, organizations=organizations)
    if form.is_valid():
        try:
            services.invitation_create(
                actor=user,
                organization=form.cleaned_data["organization"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                full_name=form.cleaned_data["full_name"],
                npi=form.cleaned_data["npi"],
            )
        except ServiceError as error:
            form.add_error(None, str(error.detail))
        else:
            messages.success(request, "The invitation was sent.")
            return redirect("invitation_list")
    return _invitations_page(request, invitation_form=form, status=400)


@login_required
@require_POST
def practice_create(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if not permissions.can_create_practice(user):
        raise PermissionDenied
    form = PracticeCreateForm(request.POST)
    if form.is_valid():
        try:
            practice = services.practice_create(actor=user, name=form.cleaned_data["name"])
        except ServiceError as error:
            form.add_error("name", str(error.detail))
        else:
            messages.success(request, f"{practice.name} was added. You can now invite its staff.")
            return redirect("invitation_list")
    return _invitations_page(request, practice_form=form, status=400)


def _invitation_for_action(request: HttpRequest, public_id: uuid.UUID) -> tuple[User, Invitation]:
    user = _signed_in_user(request)
    try:
        return user, selectors.invitation_get_for_user(user=user, public_id=public_id)
    except NotFound as error:
        raise Http404 from error


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user, invitation = _invitation_for_action(request, public_id)
    try:
        services.invitation_revoke(actor=user, invitation=invitation)
    except NotFound as error:
        raise Http404 from error
    except ServiceError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, "The invitation was revoked; its link no longer works.")
    return redirect("invitation_list")


@login_required
@require_POST
def invitation_resend(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user, invitation = _invitation_for_action(request, public_id)
    try:
        services.invitation_resend(actor=user, invitation=invitation)
    except NotFound as error:
        raise Http404 from error
    except ServiceError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, "The invitation was sent again with a new link.")
    return redirect("invitation_list")


@require_GET
def invitation_accept_token(request: HttpRequest, token: str) -> HttpResponse:
    """The e-mailed link: keep the token in the session and continue on a token-less address."""
    try:
        selectors.invitation_get_by_token(token=token)
    except NotFound:
        return render(request, "accounts/invitation_invalid.html", status=404)
    request.session[INVITATION_SESSION_KEY] = token
    return redirect("invitation_accept")


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponseBase:
    token = request.session.get(INVITATION_SESSION_KEY, "")
    try:
        invitation = selectors.invitation_get_by_token(token=str(token))
    except NotFound:
        return render(request, "accounts/invitation_invalid.html", status=404)
    try:
        services.invitation_check_open(invitation)
    except ServiceError as error:
        request.session.pop(INVITATION_SESSION_KEY, None)
        return render(
            request, "accounts/invitation_closed.html", {"reason": error.detail}, status=410
        )
    user = request.user if isinstance(request.user, User) and request.user.is_active else None
    existing = services.invitation_existing_account(invitation)
    context: dict[str, object] = {"invitation": invitation, "existing": existing}
    if existing is not None or user is not None:
        return _accept_for_signed_in(request, invitation=invitation, user=user, context=context)

    form = InvitationAcceptForm(
        request.POST if request.method == "POST" else None,
        email=invitation.email,
        initial={"full_name": invitation.full_name},
    )
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invitation_accept(
                actor=None,
                invitation=invitation,
                full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password1"],
            )
        except ServiceError as error:
            form.add_error(None, str(error.detail))
        else:
            request.session.pop(INVITATION_SESSION_KEY, None)
            account = membership.user
            # The password was typed seconds ago: count it as this session's (re-)authentication
            # so that enrolling MFA next, which requires a recent one, does not ask for it again.
            record_authentication(
                request, account, "password", email=account.email, reauthenticated=True
            )
            messages.success(
                request,
                f"Welcome to {invitation.organization.name}. Set up two-factor authentication "
                "to continue.",
            )
            return perform_login(
                request,
                account,
                email_verification="none",
                redirect_url=reverse("mfa_index"),
                email=account.email,
            )
    context["form"] = form
    return render(
        request,
        "accounts/invitation_accept.html",
        context,
        status=400 if request.method == "POST" else 200,
    )


def _accept_for_signed_in(
    request: HttpRequest,
    *,
    invitation: Invitation,
    user: User | None,
    context: dict[str, object],
) -> HttpResponse:
    """An invitation for an existing account, or a visitor who is signed in."""
    existing = context["existing"]
    if request.method == "POST" and user is not None and existing == user:
        try:
            services.invitation_accept(actor=user, invitation=invitation)
        except ServiceError as error:
            messages.error(request, str(error.detail))
        else:
            request.session.pop(INVITATION_SESSION_KEY, None)
            messages.success(request, f"You joined {invitation.organization.name}.")
            return redirect("dashboard")
    context["login_url"] = reverse("account_login") + "?next=" + reverse("invitation_accept")
    return render(request, "accounts/invitation_existing.html", context)


@login_required
@require_GET
def member_list(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if not permissions.can_manage_invitations(user):
        raise PermissionDenied
    memberships = selectors.membership_list_manageable_for_user(user=user)
    return render(request, "accounts/member_list.html", {"memberships": memberships})


@login_required
@require_POST
def membership_deactivate(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _signed_in_user(request)
    try:
        membership = selectors.membership_get_manageable_for_user(user=user, public_id=public_id)
        services.membership_deactivate(actor=user, membership=membership)
    except NotFound as error:
        raise Http404 from error
    except ServiceError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(
            request,
            f"{membership.user} no longer belongs to {membership.organization.name}; "
            "their sessions were ended.",
        )
    return redirect("member_list")


@login_required
@require_POST
def session_end(request: HttpRequest) -> HttpResponse:
    """End one of the user's own sessions; ending the current one signs out here."""
    user = _signed_in_user(request)
    form = SessionEndForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose a session to end.", status=400, content_type="text/plain")
    try:
        session = selectors.user_session_get_for_user(
            user=user, session_id=form.cleaned_data["session"]
        )
    except NotFound as error:
        raise Http404 from error
    current = session.session_key == request.session.session_key
    services.user_session_end(actor=user, session=session)
    if current:
        logout(request)
        return redirect("account_login")
    messages.success(request, "The session was ended.")
    return redirect("usersessions_list")
