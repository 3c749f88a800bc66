"""Read-only views of the outbox for operators: what was sent, what failed and why (no PHI)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from portal.notifications.models import EmailDelivery


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin[EmailDelivery]):
    list_display = ("id", "kind", "status", "attempts", "created_at", "sent_at", "last_error")
    list_filter = ("status", "kind")
    ordering = ("-created_at",)
    readonly_fields = (
        "public_id",
        "key",
        "recipient",
        "kind",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "last_error",
        "sent_at",
        "created_at",
        "updated_at",
    )
    list_select_related = ("recipient",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EmailDelivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EmailDelivery | None = None) -> bool:
        return False
