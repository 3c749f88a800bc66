"""Escalation: practice messages nobody at the clinic read for 24 hours go to the coordinators,
once per message."""

from __future__ import annotations

import datetime

import pytest
import time_machine

from messaging import services, tasks
from messaging.models import Message, Thread
from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals.models import ReferralStatus
from tests.messaging.conftest import Send
from tests.personas import Cast
from tests.referrals.factories import referral_in_state

pytestmark = pytest.mark.django_db

SENT = datetime.datetime(2030, 6, 3, 13, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(hours=24)


def _send_at(send: Send, moment: datetime.datetime, persona: str, thread: Thread) -> Message:
    with time_machine.travel(moment, tick=False):
        return send(persona, thread, f"Sent by {persona}.")


def _escalate_at(moment: datetime.datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return services.messages_escalate_unread()


def _escalations() -> list[tuple[str, str, str, str]]:
    return list(
        Notification.objects.filter(event="message.unanswered")
        .order_by("recipient__email")
        .values_list("recipient__email", "event", "reference", "link")
    )


def test_a_practice_message_unread_for_24_hours_goes_to_the_coordinators_once(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = _send_at(send, SENT, "provider", referral_thread)
    second = _send_at(send, SENT + datetime.timedelta(minutes=5), "staff", referral_thread)

    assert _escalate_at(SENT + DAY - datetime.timedelta(seconds=1)) == 0
    assert _escalations() == []

    assert _escalate_at(SENT + DAY + datetime.timedelta(minutes=5)) == 2
    reference = referral_thread.reference
    assert _escalations() == [
        ("coordinator@cast.example", "message.unanswered", reference,
         f"/messages/{referral_thread.public_id}/"),
    ]  # fmt: skip
    assert {m.escalated_at for m in Message.objects.filter(pk__in=[first.pk, second.pk])} == {
        SENT + DAY + datetime.timedelta(minutes=5)
    }
    event = AuditEvent.objects.get(action="thread.escalated")
    assert event.details == {"messages": 2}

    assert _escalate_at(SENT + 3 * DAY) == 0
    assert len(_escalations()) == 1


def test_a_message_read_by_anyone_at_the_clinic_is_not_escalated(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    _send_at(send, SENT, "provider", referral_thread)
    with time_machine.travel(SENT + datetime.timedelta(hours=2), tick=False):
        services.thread_mark_read(actor=cast.user("clinician"), thread=referral_thread)
    later = _send_at(send, SENT + datetime.timedelta(hours=3), "provider", referral_thread)

    assert _escalate_at(SENT + 2 * DAY) == 1
    assert list(Message.objects.filter(escalated_at__isnull=False)) == [later]


def test_a_reader_who_left_the_clinic_does_not_count(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    _send_at(send, SENT, "provider", referral_thread)
    services.thread_mark_read(actor=cast.user("clinician"), thread=referral_thread)
    membership = cast["clinician"].membership
    assert membership is not None
    membership.is_active = False
    membership.save(update_fields=["is_active"])

    assert _escalate_at(SENT + 2 * DAY) == 1


def test_clinic_retracted_and_draft_messages_are_not_escalated(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    _send_at(send, SENT, "coordinator", referral_thread)
    retracted = _send_at(send, SENT, "provider", referral_thread)
    with time_machine.travel(SENT + datetime.timedelta(minutes=1), tick=False):
        services.message_retract(actor=cast.user("provider"), message=retracted)
    draft_thread = services.referral_thread_ensure(
        referral=referral_in_state(cast, ReferralStatus.DRAFT)
    )
    _send_at(send, SENT, "provider", draft_thread)

    assert _escalate_at(SENT + 2 * DAY) == 0
    assert _escalations() == []


def test_the_periodic_task_escalates(cast: Cast, general_thread: Thread) -> None:
    Message.objects.filter(thread=general_thread).update(created_at=SENT)

    with time_machine.travel(SENT + 2 * DAY, tick=False):
        tasks.escalate_unread.delay()

    assert [row[0] for row in _escalations()] == ["coordinator@cast.example"]
    assert Message.objects.get(thread=general_thread).escalated_at == SENT + 2 * DAY
