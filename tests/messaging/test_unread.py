"""Unread counts: exact per thread and in total, after reading, after new messages, and for a user
in several organisations; each computed in one query whatever the number of threads."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import selectors, services
from messaging.models import Thread
from portal.accounts.models import Role, User
from tests.factories import MembershipFactory
from tests.messaging.conftest import Send
from tests.personas import Cast

pytestmark = pytest.mark.django_db


def _counts(user: User) -> dict[str, int]:
    return {
        thread.subject: thread.unread_count  # type: ignore[attr-defined]
        for thread in selectors.thread_list_for_user(user=user)
    }


def _total(user: User) -> int:
    return selectors.thread_unread_total_for_user(user=user)


def test_counts_after_new_messages_reading_and_more_messages(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    coordinator, provider = cast.user("coordinator"), cast.user("provider")
    for text in ("One.", "Two.", "Three."):
        send("provider", referral_thread, text)

    assert _counts(coordinator) == {referral_thread.subject: 3}
    assert _total(coordinator) == 3
    assert _total(cast.user("clinician")) == 3
    assert _total(cast.user("colleague")) == 3
    assert _total(provider) == 0

    services.thread_mark_read(actor=coordinator, thread=referral_thread)
    assert (_counts(coordinator), _total(coordinator)) == ({referral_thread.subject: 0}, 0)
    assert _total(cast.user("clinician")) == 3

    send("provider", referral_thread, "Four.")
    send("colleague", referral_thread, "Five.")
    assert _total(coordinator) == 2
    # The provider's send marked everything before it read; the colleague's message is new.
    assert _total(provider) == 1

    reply = send("coordinator", referral_thread, "Reply.")
    assert _total(coordinator) == 0
    assert _total(provider) == 2
    assert reply.sequence == 6


def test_reading_up_to_a_message_counts_only_the_later_ones(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    messages = [send("provider", referral_thread, f"Message {n}.") for n in range(1, 6)]
    coordinator = cast.user("coordinator")

    services.thread_mark_read(actor=coordinator, thread=referral_thread, through=messages[1])

    assert _total(coordinator) == 3


def test_retracted_and_own_messages_are_not_unread(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    kept = send("provider", referral_thread, "Kept.")
    taken_back = send("provider", referral_thread, "Taken back.")
    send("coordinator", referral_thread, "Own message.")
    services.message_retract(actor=cast.user("provider"), message=taken_back)

    assert _total(cast.user("clinician")) == 2
    # The coordinator's own send read everything before it.
    assert _total(cast.user("coordinator")) == 0
    assert kept.sequence == 1


def test_a_user_in_several_organisations_sees_exact_counts_per_thread(
    cast: Cast, referral_thread: Thread, general_thread: Thread, send: Send
) -> None:
    # The provider of practice A also works for practice B.
    provider = cast.user("provider")
    MembershipFactory.create(user=provider, organization=cast.other_practice, role=Role.PROVIDER,
                             npi="1234567893")  # fmt: skip
    other = services.thread_create(
        actor=cast.user("outsider"), subject="Practice B question", body="From practice B."
    )
    clinic_thread = services.thread_create(
        actor=cast.user("coordinator"),
        subject="For practice B",
        body="Clinic to practice B.",
        practice_id=cast.other_practice.public_id,
    )
    send("coordinator", referral_thread, "To practice A, one.")
    send("clinician", referral_thread, "To practice A, two.")
    send("outsider", clinic_thread, "Practice B answers.")

    assert _counts(provider) == {
        referral_thread.subject: 2,
        general_thread.subject: 0,
        other.subject: 1,
        clinic_thread.subject: 2,
    }
    assert _total(provider) == 5
    # The outsider is only in practice B; the coordinator sees every thread of the clinic.
    assert _counts(cast.user("outsider")) == {other.subject: 0, clinic_thread.subject: 0}
    assert _counts(cast.user("coordinator")) == {
        referral_thread.subject: 1,
        general_thread.subject: 1,
        other.subject: 1,
        clinic_thread.subject: 1,
    }

    services.thread_mark_read(actor=provider, thread=clinic_thread)
    assert _total(provider) == 3


def test_threads_are_listed_newest_activity_first(
    cast: Cast, referral_thread: Thread, general_thread: Thread, send: Send
) -> None:
    send("coordinator", referral_thread, "Latest.")
    assert [t.pk for t in selectors.thread_list_for_user(user=cast.user("provider"))] == [
        referral_thread.pk,
        general_thread.pk,
    ]

    send("coordinator", general_thread, "Even later.")
    assert [t.pk for t in selectors.thread_list_for_user(user=cast.user("provider"))] == [
        general_thread.pk,
        referral_thread.pk,
    ]


def test_counting_takes_one_query_whatever_the_number_of_threads(cast: Cast, send: Send) -> None:
    coordinator = cast.user("coordinator")

    def measure() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as listed:
            rows = list(selectors.thread_list_for_user(user=coordinator))
            counts = {row.unread_count for row in rows}  # type: ignore[attr-defined]
            assert counts == {2}
        with CaptureQueriesContext(connection) as total:
            assert _total(coordinator) == 2 * len(rows)
        return len(listed), len(total)

    def add_thread(number: int) -> None:
        thread = services.thread_create(
            actor=cast.user("provider"), subject=f"Thread {number}", body="First."
        )
        send("colleague", thread, "Second.")

    add_thread(0)
    few = measure()
    for number in range(1, 8):
        add_thread(number)
    many = measure()

    # One read of the user's memberships, then one query each.
    assert few == many == (2, 2)
