"""``{% referrals_nav %}`` for the header, and filters the referral pages share."""

from __future__ import annotations

from typing import Any

from django import template

from portal.accounts.models import User
from referrals.forms import CONTRAINDICATION_LABELS
from referrals.permissions import access_for

register = template.Library()


@register.inclusion_tag("referrals/_nav.html", takes_context=True)
def referrals_nav(context: template.Context) -> dict[str, Any]:
    """The "Referrals" link for members of an organisation and "Triage worklist" for clinic
    staff (one membership query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not isinstance(user, User):
        return {"show": False}
    access = access_for(user)
    return {
        "show": bool(access.practice_ids or access.clinic_ids),
        "worklist": bool(access.clinic_ids),
        "path": getattr(request, "path", ""),
    }


@register.filter
def band_label(band: str | None) -> str:
    """``moderately_severe`` -> ``moderately severe``."""
    return (band or "").replace("_", " ")


@register.filter
def yes_no(value: object) -> str:
    """True/False/None as the checklist shows them."""
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    return "Not answered"


@register.filter
def contraindication_label(key: str) -> str:
    return CONTRAINDICATION_LABELS.get(key, key.replace("_", " "))
