"""The Django admin, reachable only through the allauth sign-in (with MFA) and only for staff.

``secure_admin_login`` sends the admin's own login page to allauth's, so the admin never accepts a
bare password; the identity middleware's MFA gate covers /admin/ like every other page; Django's
admin itself then refuses anyone who is not active staff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from allauth.account.decorators import secure_admin_login
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from portal.accounts.models import Invitation, Membership, Organization, User
from portal.accounts.services import membership_deactivate, user_deactivate
from portal.api.errors import ServiceError

admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]


def _password_change_elsewhere(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    """The admin's password form would skip allauth's re-authentication and sign-in records."""
    return HttpResponseRedirect(reverse("account_change_password"))


admin.site.password_change = _password_change_elsewhere  # type: ignore[method-assign,assignment]


def _deactivate_each(
    request: HttpRequest, queryset: Iterable[Any], deactivate: Callable[[Any], object]
) -> None:
    done = 0
    for row in queryset:
        try:
            deactivate(row)
        except ServiceError as error:
            messages.error(request, f"{row}: {error.detail}")
        else:
            done += 1
    if done:
        messages.success(request, f"Deactivated {done}; their sessions and app tokens ended.")


class MembershipInline(admin.TabularInline[Membership, User]):
    model = Membership
    extra = 0
    fields = ("organization", "role", "npi", "is_active")
    # Deactivation goes through the service (ends sessions, audits): the action on memberships.
    readonly_fields = ("is_active",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff")
    search_fields = ("email", "full_name")
    # is_active changes only through the "deactivate" action (the service ends every session and
    # audits) or an accepted invitation (which reactivates).
    readonly_fields = ("public_id", "is_active", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("public_id", "email", "full_name", "password")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "password1", "password2")}),
    )
    inlines = (MembershipInline,)
    actions = ("deactivate_users",)

    @admin.action(description="Deactivate the selected accounts (ends their sessions)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        actor = request.user
        assert isinstance(actor, User)  # noqa: S101 - the admin site only serves staff users  # nosec B101
        _deactivate_each(request, queryset, lambda user: user_deactivate(actor=actor, user=user))


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ("name", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    readonly_fields = ("public_id",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ("user", "organization", "role", "is_active")
    list_filter = ("role", "is_active", "organization")
    search_fields = ("user__email", "organization__name")
    readonly_fields = ("public_id", "is_active", "deactivated_at")
    actions = ("deactivate_memberships",)

    @admin.action(description="Deactivate the selected memberships (ends the members' sessions)")
    def deactivate_memberships(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        actor = request.user
        assert isinstance(actor, User)  # noqa: S101 - the admin site only serves staff users  # nosec B101
        _deactivate_each(
            request,
            queryset.filter(is_active=True),
            lambda membership: membership_deactivate(actor=actor, membership=membership),
        )


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    """Read-only: invitations are made and revoked on the invitations page (which e-mails)."""

    list_display = ("email", "organization", "role", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role", "organization")
    search_fields = ("email", "organization__name")
    exclude = ("token_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False
