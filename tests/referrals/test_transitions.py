"""Every action from every state, through the services, by the party who takes that action.

The expected table below is written out by hand from DESIGN.md section 5 (plus the decisions in
referrals/transitions.py), not derived from the code's table, so a wrong row in either fails.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from portal.api.errors import Conflict, NotFound
from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals.models import ReferralEvent, ReferralStatus
from referrals.transitions import ACTIONS, INTEROP, TRANSITIONS
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.referrals.helpers import ACTING_PERSONA, SERVICE_CALLS, Snapshot, enqueued

S = ReferralStatus
ALL_STATES = [status.value for status in ReferralStatus]
BEFORE_COMPLETION = ["draft", "submitted", "in_review", "info_requested", "accepted",
                     "scheduled", "in_treatment"]  # fmt: skip

EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("sign-off", "draft"): ("draft", "signed_off"),
    ("sign-off", "info_requested"): ("info_requested", "signed_off"),
    ("submit", "draft"): ("submitted", "submitted"),
    ("submit", "info_requested"): ("in_review", "answered"),
    ("review", "submitted"): ("in_review", "reviewed"),
    ("request-info", "submitted"): ("info_requested", "info_requested"),
    ("request-info", "in_review"): ("info_requested", "info_requested"),
    ("accept", "in_review"): ("accepted", "accepted"),
    ("decline", "submitted"): ("declined", "declined"),
    ("decline", "in_review"): ("declined", "declined"),
    ("decline", "info_requested"): ("declined", "declined"),
    ("schedule", "accepted"): ("scheduled", "scheduled"),
    ("schedule", "scheduled"): ("scheduled", "scheduled"),
    ("no-show", "scheduled"): ("accepted", "no_show"),
    ("start-treatment", "scheduled"): ("in_treatment", "treatment_started"),
    ("complete", "in_treatment"): ("completed", "completed"),
    ("acknowledge", "completed"): ("closed", "closed"),
    **{("cancel", state): ("cancelled", "cancelled") for state in BEFORE_COMPLETION},
}
# Who hears about each event (besides nobody for the actor themself).
PRACTICE_SIDE = {"provider"}  # the actor-provider entered these, so nobody else to tell
EXPECTED_RECIPIENTS: dict[str, set[str]] = {
    "signed_off": {"staff"},  # who entered it on the provider's behalf
    "submitted": {"coordinator"},
    "answered": {"coordinator"},
    "reviewed": PRACTICE_SIDE,
    "info_requested": PRACTICE_SIDE,
    "accepted": PRACTICE_SIDE,
    "declined": PRACTICE_SIDE,
    "scheduled": PRACTICE_SIDE,
    "no_show": PRACTICE_SIDE,
    "treatment_started": PRACTICE_SIDE,
    "completed": PRACTICE_SIDE,
    "closed": {"coordinator", "clinician"},
    "cancelled": {"coordinator", "clinician"},
}

CASES = [(action, state) for action in ACTIONS for state in ALL_STATES]


def test_the_code_table_matches_the_expected_table() -> None:
    from_code = {(t.action, t.source.value): (t.target.value, t.event.value) for t in TRANSITIONS}
    assert from_code == EXPECTED


def test_every_state_has_its_fhir_task_status_and_360x_step() -> None:
    assert {state: (i.fhir_task_status, i.x360_transaction) for state, i in INTEROP.items()} == {
        "draft": ("draft", None),
        "submitted": ("requested", "PCC-55 request"),
        "in_review": ("received", None),
        "info_requested": ("on-hold", None),
        "accepted": ("accepted", "PCC-56 accept"),
        "declined": ("rejected", "PCC-56 decline"),
        "scheduled": ("in-progress", "PCC-60 appointment"),
        "in_treatment": ("in-progress", "PCC-59 interim notes"),
        "completed": ("completed", "PCC-57 outcome"),
        "closed": ("completed", None),
        "cancelled": ("cancelled", "PCC-58 cancel"),
    }


@pytest.mark.parametrize(("action", "state"), CASES)
def test_action_from_state(
    cast: Cast,
    action: str,
    state: str,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    referral = referral_in_state(cast, state)
    if action == "sign-off":
        # Entered by practice staff; in an editable state the sign-off is pending (again).
        referral.created_by = cast.user("staff")
        if state in {"draft", "info_requested"}:
            referral.provider_signed_off_at = None
        referral.save(update_fields=["created_by", "provider_signed_off_at"])
    actor = cast.user(ACTING_PERSONA[action])
    expected = EXPECTED.get((action, state))
    before = Snapshot.take()

    if state == "draft" and ACTING_PERSONA[action] in {"coordinator", "clinician"}:
        # The clinic does not see drafts at all: the same answer as for a missing referral.
        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(NotFound):
            SERVICE_CALLS[action](actor, referral)
        assert Snapshot.take() == before
        assert enqueued(callbacks) == []
        return
    if expected is None:
        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Conflict) as error:
            SERVICE_CALLS[action](actor, referral)
        assert error.value.code == "invalid_transition"
        assert error.value.extra["status"] == state
        assert action not in error.value.extra["allowed_actions"]
        assert Snapshot.take() == before
        assert enqueued(callbacks) == []
        return

    target, event_kind = expected
    with django_capture_on_commit_callbacks() as callbacks:
        updated = SERVICE_CALLS[action](actor, referral)
    referral.refresh_from_db()
    assert updated.status == referral.status == target
    event = ReferralEvent.objects.filter(referral=referral).latest("created_at", "id")
    assert (event.kind, event.actor, event.from_status, event.to_status) == (
        event_kind,
        actor,
        state,
        target,
    )
    audit = AuditEvent.objects.filter(object_id=str(referral.public_id)).latest("sequence")
    assert (audit.action, audit.outcome, audit.actor) == (
        f"referral.{event_kind}",
        "allowed",
        actor,
    )
    assert audit.details["from_status"] == state
    assert audit.details["to_status"] == target
    recipients = set(
        Notification.objects.filter(event=f"referral.{event_kind}").values_list(
            "recipient__email", flat=True
        )
    )
    expected_recipients = EXPECTED_RECIPIENTS[event_kind]
    if state == "draft" and action == "cancel":
        expected_recipients = set()  # the clinic never saw the draft
    assert recipients == {f"{name}@cast.example" for name in expected_recipients}
    # E-mails go out only once the transaction commits, and only for immediate deliveries.
    assert len(enqueued(callbacks)) == (1 if recipients else 0)


def test_after_a_no_show_the_consult_is_cleared_and_can_be_rescheduled(cast: Cast) -> None:
    referral = referral_in_state(cast, "scheduled")
    coordinator = cast.user("coordinator")

    SERVICE_CALLS["no-show"](coordinator, referral)
    referral.refresh_from_db()
    assert (referral.status, referral.consult_at) == ("accepted", None)

    SERVICE_CALLS["schedule"](coordinator, referral)
    referral.refresh_from_db()
    assert referral.status == "scheduled"
    assert referral.consult_at is not None
    assert referral.consult_at > timezone.now()


def test_a_no_show_waits_for_the_consult_time(cast: Cast) -> None:
    referral = referral_in_state(
        cast, "scheduled", consult_at=timezone.now() + datetime.timedelta(hours=2)
    )
    before = Snapshot.take()

    with pytest.raises(Conflict) as error:
        SERVICE_CALLS["no-show"](cast.user("coordinator"), referral)

    assert error.value.code == "consult_not_started"
    assert error.value.extra["allowed_actions"] == ["schedule"]
    assert Snapshot.take() == before
