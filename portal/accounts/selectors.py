"""Reads of identity data, always scoped to the asking user."""

from typing import Any

from django.db.models import QuerySet

from portal.accounts.models import Membership


def membership_list_for_user(*, user: Any) -> QuerySet[Membership]:
    """The user's own active memberships, with their organisations."""
    return (
        Membership.objects.filter(user=user, is_active=True, user__is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )
