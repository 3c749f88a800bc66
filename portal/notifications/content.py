"""What a notification may contain and the words it is shown with, in the portal and by e-mail.

The only dynamic parts of any e-mail are the reference numbers and a link to the portal, so each is
checked against a strict pattern: free text (a patient's name, a clinical note) cannot slip in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

REFERENCE_PATTERN = re.compile(r"\A[A-Z]{1,3}-[0-9]{4}-[0-9]{5}\Z")
# Dotted lower-case names such as "referral.info_requested" or "message.received".
EVENT_PATTERN = re.compile(r"\A[a-z][a-z_]{0,30}(?:\.[a-z][a-z_]{0,30}){1,2}\Z")
# A portal path of lower-case segments (words and public UUIDs), ending in "/", with an optional
# fragment. Upper case, spaces, query strings and other hosts are refused.
LINK_PATTERN = re.compile(r"\A/(?:[a-z0-9][a-z0-9_-]*/)*(?:#[a-z0-9][a-z0-9_-]*)?\Z")
LINK_MAX_LENGTH = 200

# What a reference number's prefix names in a sentence ("Update on referral R-2026-00042").
# "R": referral numbers (referrals app); "T": general practice-clinic threads (messaging app).
REFERENCE_NOUNS: dict[str, tuple[str, str]] = {
    "R": ("referral", "referrals"),
    "T": ("conversation", "conversations"),
}
DEFAULT_NOUN = ("record", "records")
# A digest lists at most this many reference numbers and counts the rest.
DIGEST_MAX_REFERENCES = 20


def validate_reference(reference: str) -> str:
    if not isinstance(reference, str) or not REFERENCE_PATTERN.match(reference):
        raise ValueError("reference must be a number like R-2026-00042.")
    return reference


def validate_event(event: str) -> str:
    if not isinstance(event, str) or not EVENT_PATTERN.match(event):
        raise ValueError("event must be a dotted lower-case name like referral.accepted.")
    return event


def validate_link(link: str) -> str:
    if not isinstance(link, str) or len(link) > LINK_MAX_LENGTH or not LINK_PATTERN.match(link):
        raise ValueError("link must be a portal path of public ids like /referrals/<uuid>/.")
    return link


def event_title(event: str) -> str:
    """ "referral.info_requested" -> "Referral info requested" (shown in the portal only)."""
    return " ".join(event.replace("_", " ").split(".")).capitalize()


def reference_noun(reference: str, *, plural: bool = False) -> str:
    singular_form, plural_form = REFERENCE_NOUNS.get(reference.split("-", 1)[0], DEFAULT_NOUN)
    return plural_form if plural else singular_form


def _render(template_name: str, context: dict[str, object]) -> str:
    # Template files end in a newline of their own; the message ends in exactly one.
    return render_to_string(template_name, context).strip() + "\n"


def absolute_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def immediate_email(*, reference: str, link: str) -> EmailContent:
    """ "There is an update on referral R-2026-00042. Sign in to view it." and the link."""
    validate_reference(reference)
    validate_link(link)
    context: dict[str, object] = {
        "noun": reference_noun(reference),
        "reference": reference,
        "url": absolute_url(link),
    }
    return EmailContent(
        subject=f"Update on {context['noun']} {reference}",
        text=_render("notifications/email/update.txt", context),
        html=_render("notifications/email/update.html", context),
    )


def digest_email(*, references: Sequence[str], update_count: int) -> EmailContent:
    """ "You have 3 updates on referrals R-2026-00042, R-2026-00051. Sign in to view them." """
    distinct = sorted({validate_reference(reference) for reference in references})
    if not distinct or update_count < 1:
        raise ValueError("a digest needs at least one update.")
    nouns = {reference_noun(reference) for reference in distinct}
    listed = distinct[:DIGEST_MAX_REFERENCES]
    context: dict[str, object] = {
        "update_count": update_count,
        "noun": (reference_noun(distinct[0], plural=len(distinct) > 1) if len(nouns) == 1 else ""),
        "references": ", ".join(listed),
        "more_count": len(distinct) - len(listed),
        "url": absolute_url(reverse("notifications:list")),
    }
    plural = "s" if update_count != 1 else ""
    return EmailContent(
        subject=f"Daily summary: {update_count} update{plural} in the referral portal",
        text=_render("notifications/email/digest.txt", context),
        html=_render("notifications/email/digest.html", context),
    )
