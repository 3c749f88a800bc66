"""The words of the system messages that referral events post into the referral's thread.

Pure functions of the event, so both sides read one timeline in the same words. The texts name
people by their display name (staff names, not PHI) and may quote the event's note (a question,
an answer, a reason): the message body is encrypted like any other.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import dateformat, timezone

from portal.accounts.models import User
from referrals.models import EventKind, ReferralEvent


def _who(actor: User | None) -> str:
    return actor.get_full_name() if actor is not None else "the portal"


def consult_time_text(moment: datetime) -> str:
    """ "Tuesday, March 3, 2026 at 10:00 AM EST" in the portal's time zone."""
    local = timezone.localtime(moment)
    return dateformat.format(local, r"l, F j, Y \a\t g:i A T")


def _with_note(sentence: str, note: str) -> str:
    note = note.strip()
    return f"{sentence}: {note}" if note else f"{sentence}."


def system_text_for(event: ReferralEvent) -> str | None:
    """The message for ``event``, or None for events that post nothing (a draft being created or
    edited is not news to anyone)."""
    who = _who(event.actor)
    referral = event.referral
    kind = event.kind
    if kind == EventKind.SIGNED_OFF:
        return f"Signed off by {who}."
    if kind == EventKind.SUBMITTED:
        return f"Referral {referral.number} submitted by {who}."
    if kind == EventKind.REVIEWED:
        return f"Picked up for review by {who}."
    if kind == EventKind.INFO_REQUESTED:
        return _with_note(f"Information requested by {who}", event.note)
    if kind == EventKind.ANSWERED:
        return _with_note(f"Information provided by {who}", event.note)
    if kind == EventKind.ACCEPTED:
        return f"Accepted by {who}."
    if kind == EventKind.DECLINED:
        return _with_note(f"Declined by {who}", event.note)
    if kind == EventKind.SCHEDULED:
        if referral.consult_at is None:
            return f"Consult scheduled by {who}."
        return f"Consult scheduled for {consult_time_text(referral.consult_at)}."
    if kind == EventKind.NO_SHOW:
        return f"The patient did not attend the consult (recorded by {who})."
    if kind == EventKind.TREATMENT_STARTED:
        return f"Treatment started (recorded by {who})."
    if kind == EventKind.COMPLETED:
        return f"Treatment completed (recorded by {who})."
    if kind == EventKind.CLOSED:
        return f"Outcome acknowledged by {who}; the referral is closed."
    if kind == EventKind.CANCELLED:
        return _with_note(f"Cancelled by {who}", event.note)
    if kind == EventKind.ATTACHMENT_ADDED:
        return f"A record was added to the referral by {who}."
    if kind == EventKind.URGENT_ALERT:
        return (
            "Urgent: active suicidal intent was reported. The clinic has been alerted for "
            "same-day contact."
        )
    if kind == EventKind.OVERDUE:
        return "Triage is past its due time."
    if kind == EventKind.REPORT_SIGNED:
        # The note is the reports app's own sentence ("Progress report 2 (interim) was signed and
        # delivered ..."). A generated but unsigned report stays clinic-internal: the practice
        # cannot open it yet, so REPORT_READY posts nothing into the shared thread.
        return event.note.strip() or f"A progress report was signed by {who}."
    return None
