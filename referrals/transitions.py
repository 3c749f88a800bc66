"""The referral state machine as data: one table drives the checks and ``allowed_actions``.

Each row says: this action, from this state, by one of these parties, leads to that state and is
recorded as that timeline event. A guard adds a business precondition (the provider's sign-off,
a consult that has happened) and names the error code it answers with when it is not met.

Decisions recorded here (DESIGN.md section 5 leaves them open):

- The referrer's answer to an information request ("submit" with an answer from
  ``info_requested``) returns the referral to ``in_review``: a coordinator already holds it, so it
  goes back to them rather than to the unclaimed ``submitted`` pile.
- ``no-show`` is recorded on a scheduled consult whose time has come, and moves the referral back
  to ``accepted`` with the consult time cleared: the patient is still accepted and needs a new
  consult, the worklist shows it as waiting for scheduling, and the same consult cannot be marked
  twice. The timeline keeps the missed consult.
- ``schedule`` from ``scheduled`` reschedules.
- ``sign-off`` (an addition to the section 6 action list) is the provider approving a draft that
  practice staff entered; staff may submit only a signed-off referral, and a staff edit after the
  sign-off withdraws it. A referral the provider entered themself needs no sign-off: their own
  submission is it (staff cannot submit it for them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from referrals import permissions
from referrals.models import EventKind, Referral, ReferralStatus
from referrals.permissions import (
    CLINICIAN,
    COORDINATOR,
    PRACTICE_STAFF,
    REFERRER,
)

S = ReferralStatus

# A guard returns None when the action may go ahead, else (error code, message).
Guard = Callable[[frozenset[str], Referral, datetime], tuple[str, str] | None]


def _sign_off_pending(
    parties: frozenset[str], referral: Referral, now: datetime
) -> tuple[str, str] | None:
    if referral.created_by_id == referral.provider_id:
        return (
            "sign_off_not_needed",
            "The provider entered this referral; submitting it is their sign-off.",
        )
    if permissions.needs_sign_off(referral):
        return None
    return ("already_signed_off", "The provider has already signed this referral off.")


def _signed_off_unless_referrer(
    parties: frozenset[str], referral: Referral, now: datetime
) -> tuple[str, str] | None:
    if REFERRER in parties or not permissions.needs_sign_off(referral):
        return None
    return (
        "sign_off_required",
        "The referring provider must sign this referral off before staff can submit it.",
    )


def _consult_started(
    parties: frozenset[str], referral: Referral, now: datetime
) -> tuple[str, str] | None:
    if permissions.consult_has_started(referral, now):
        return None
    return ("consult_not_started", "A no-show can be recorded only once the consult time has come.")


@dataclass(frozen=True)
class Transition:
    action: str
    source: ReferralStatus
    target: ReferralStatus
    event: EventKind
    parties: frozenset[str]
    guard: Guard | None = None


_REFERRER_SIDE: Final = frozenset({REFERRER, PRACTICE_STAFF})
_REFERRER_ONLY: Final = frozenset({REFERRER})
_COORDINATOR: Final = frozenset({COORDINATOR})
_CLINICIAN: Final = frozenset({CLINICIAN})

#: Every action in the order clients should offer them.
ACTIONS: Final[tuple[str, ...]] = (
    "sign-off",
    "submit",
    "review",
    "request-info",
    "accept",
    "decline",
    "schedule",
    "no-show",
    "start-treatment",
    "complete",
    "acknowledge",
    "cancel",
)

_CANCELLABLE: Final = (
    S.DRAFT,
    S.SUBMITTED,
    S.IN_REVIEW,
    S.INFO_REQUESTED,
    S.ACCEPTED,
    S.SCHEDULED,
    S.IN_TREATMENT,
)

TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(
        "sign-off", S.DRAFT, S.DRAFT, EventKind.SIGNED_OFF, _REFERRER_ONLY, _sign_off_pending
    ),
    Transition(
        "sign-off",
        S.INFO_REQUESTED,
        S.INFO_REQUESTED,
        EventKind.SIGNED_OFF,
        _REFERRER_ONLY,
        _sign_off_pending,
    ),
    Transition(
        "submit",
        S.DRAFT,
        S.SUBMITTED,
        EventKind.SUBMITTED,
        _REFERRER_SIDE,
        _signed_off_unless_referrer,
    ),
    Transition(
        "submit",
        S.INFO_REQUESTED,
        S.IN_REVIEW,
        EventKind.ANSWERED,
        _REFERRER_SIDE,
        _signed_off_unless_referrer,
    ),
    Transition("review", S.SUBMITTED, S.IN_REVIEW, EventKind.REVIEWED, _COORDINATOR),
    Transition(
        "request-info", S.SUBMITTED, S.INFO_REQUESTED, EventKind.INFO_REQUESTED, _COORDINATOR
    ),
    Transition(
        "request-info", S.IN_REVIEW, S.INFO_REQUESTED, EventKind.INFO_REQUESTED, _COORDINATOR
    ),
    Transition("accept", S.IN_REVIEW, S.ACCEPTED, EventKind.ACCEPTED, _COORDINATOR),
    Transition("decline", S.SUBMITTED, S.DECLINED, EventKind.DECLINED, _COORDINATOR),
    Transition("decline", S.IN_REVIEW, S.DECLINED, EventKind.DECLINED, _COORDINATOR),
    Transition("decline", S.INFO_REQUESTED, S.DECLINED, EventKind.DECLINED, _COORDINATOR),
    Transition("schedule", S.ACCEPTED, S.SCHEDULED, EventKind.SCHEDULED, _COORDINATOR),
    Transition("schedule", S.SCHEDULED, S.SCHEDULED, EventKind.SCHEDULED, _COORDINATOR),
    Transition(
        "no-show", S.SCHEDULED, S.ACCEPTED, EventKind.NO_SHOW, _COORDINATOR, _consult_started
    ),
    Transition(
        "start-treatment", S.SCHEDULED, S.IN_TREATMENT, EventKind.TREATMENT_STARTED, _CLINICIAN
    ),
    Transition("complete", S.IN_TREATMENT, S.COMPLETED, EventKind.COMPLETED, _CLINICIAN),
    Transition("acknowledge", S.COMPLETED, S.CLOSED, EventKind.CLOSED, _REFERRER_ONLY),
    *(
        Transition("cancel", source, S.CANCELLED, EventKind.CANCELLED, _REFERRER_SIDE)
        for source in _CANCELLABLE
    ),
)

_BY_ACTION_AND_SOURCE: Final[dict[tuple[str, str], Transition]] = {
    (transition.action, transition.source.value): transition for transition in TRANSITIONS
}
_PARTIES_BY_ACTION: Final[dict[str, frozenset[str]]] = {
    action: frozenset().union(*(t.parties for t in TRANSITIONS if t.action == action))
    for action in ACTIONS
}


@dataclass(frozen=True)
class Interop:
    """How a state is expressed to other systems: FHIR R4 Task.status and the IHE 360X step."""

    fhir_task_status: str
    x360_transaction: str | None


INTEROP: Final[dict[str, Interop]] = {
    S.DRAFT: Interop("draft", None),
    S.SUBMITTED: Interop("requested", "PCC-55 request"),
    S.IN_REVIEW: Interop("received", None),
    S.INFO_REQUESTED: Interop("on-hold", None),
    S.ACCEPTED: Interop("accepted", "PCC-56 accept"),
    S.DECLINED: Interop("rejected", "PCC-56 decline"),
    S.SCHEDULED: Interop("in-progress", "PCC-60 appointment"),
    S.IN_TREATMENT: Interop("in-progress", "PCC-59 interim notes"),
    S.COMPLETED: Interop("completed", "PCC-57 outcome"),
    S.CLOSED: Interop("completed", None),
    S.CANCELLED: Interop("cancelled", "PCC-58 cancel"),
}


def transition_for(action: str, status: str) -> Transition | None:
    return _BY_ACTION_AND_SOURCE.get((action, status))


def parties_for_action(action: str) -> frozenset[str]:
    """Who may ever take ``action`` (from some state); empty for an unknown action."""
    return _PARTIES_BY_ACTION.get(action, frozenset())


def allowed_actions(parties: frozenset[str], referral: Referral, now: datetime) -> list[str]:
    """The actions these parties may take on the referral now, in ``ACTIONS`` order."""
    allowed: list[str] = []
    for action in ACTIONS:
        transition = transition_for(action, referral.status)
        if transition is None or not parties & transition.parties:
            continue
        if transition.guard is not None and transition.guard(parties, referral, now) is not None:
            continue
        allowed.append(action)
    return allowed
