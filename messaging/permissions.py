"""Who takes part in a thread and what they may do: small pure predicates over an ``Access``.

``Access`` is the snapshot of the user's active memberships that referrals uses too
(``referrals.permissions.access_for``, one query per request), so a removed membership or a
deactivated user loses every thread on the very next request.

The participants of a thread are derived, never stored:

- the active members of the thread's practice (provider, practice staff);
- the clinic's staff (coordinator, clinician, clinic admin), except on the thread of a referral
  that is still a draft: the clinic does not see a draft, nor its thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from messaging.models import AuthorSide, Message, MessageKind, Thread
from portal.accounts.models import Organization
from referrals.models import ReferralStatus
from referrals.permissions import PRACTICE_ONLY_STATES, Access

#: How long the author may retract a message after sending it.
RETRACTION_WINDOW: Final = timedelta(minutes=15)
#: Referral states in which the clinic takes part in the referral's thread.
CLINIC_VISIBLE_REFERRAL_STATES: Final = frozenset(
    status for status in ReferralStatus.values if status not in PRACTICE_ONLY_STATES
)


def is_practice_participant(access: Access, thread: Thread) -> bool:
    return thread.practice_id in access.practice_ids


def clinic_takes_part(thread: Thread) -> bool:
    """A general thread always; a referral's thread once the referral has left the draft."""
    if thread.referral_id is None:
        return True
    return thread.referral is not None and thread.referral.status in CLINIC_VISIBLE_REFERRAL_STATES


def is_clinic_participant(access: Access, thread: Thread) -> bool:
    return thread.clinic_id in access.clinic_ids and clinic_takes_part(thread)


def can_view_thread(access: Access, thread: Thread) -> bool:
    return is_practice_participant(access, thread) or is_clinic_participant(access, thread)


def can_post_in_thread(access: Access, thread: Thread) -> bool:
    """Every participant may write; closed referrals keep their conversation open."""
    return can_view_thread(access, thread)


def author_side(access: Access, thread: Thread) -> AuthorSide:
    """The side a participant writes from (practice first for someone on both sides)."""
    if is_practice_participant(access, thread):
        return AuthorSide.PRACTICE
    return AuthorSide.CLINIC


def can_open_general_thread(access: Access, practice: Organization, clinic: Organization) -> bool:
    """A member of the practice, or a staff member of the clinic, with the other organisation of
    the right kind."""
    if practice.kind != Organization.Kind.PRACTICE or clinic.kind != Organization.Kind.CLINIC:
        return False
    return practice.pk in access.practice_ids or clinic.pk in access.clinic_ids


def is_author(access: Access, message: Message) -> bool:
    return access.user_id is not None and message.author_id == access.user_id


def retraction_window_open(message: Message, now: datetime) -> bool:
    return now - message.created_at <= RETRACTION_WINDOW


def can_retract(access: Access, message: Message, now: datetime) -> bool:
    """The author, within the window, of a user message not yet retracted."""
    return (
        message.kind == MessageKind.USER
        and is_author(access, message)
        and message.retracted_at is None
        and retraction_window_open(message, now)
    )
