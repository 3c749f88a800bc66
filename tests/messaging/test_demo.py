"""``seed_demo`` adds conversations to the demo referrals, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from messaging import selectors
from messaging.demo import CONVERSATIONS, GENERAL_LINES, LAKESIDE
from messaging.models import Message, MessageKind, Thread, ThreadKind
from portal.accounts.models import User
from referrals.models import ReferralStatus

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--password", "demo-passphrase-for-tests", stdout=out)
    return out.getvalue()


def _user_messages() -> list[tuple[str, str, str | None]]:
    return [
        (message.thread.subject, message.author.email if message.author else "", message.body)
        for message in Message.objects.filter(kind=MessageKind.USER)
        .select_related("thread", "author")
        .order_by("thread_id", "sequence")
    ]


def test_seed_demo_adds_the_conversations_once() -> None:
    first_output = _seed()
    first = _user_messages()
    second_output = _seed()

    expected_lines = sum(len(lines) for lines in CONVERSATIONS.values()) + len(GENERAL_LINES)
    assert len(first) == expected_lines
    assert _user_messages() == first
    assert (
        f"Demo conversations: {len(CONVERSATIONS)} on referrals and a general one" in first_output
    )
    assert "Demo conversations: already present." in second_output
    general = Thread.objects.get(kind=ThreadKind.GENERAL)
    assert (general.subject, general.practice.name) == (
        "Sending records through the portal",
        LAKESIDE,
    )
    in_treatment = Thread.objects.get(
        referral__status=ReferralStatus.IN_TREATMENT, referral__practice__name=LAKESIDE
    )
    user_messages = in_treatment.messages.filter(kind="user").order_by("sequence")
    assert list(user_messages.values_list("author__email", flat=True)) == [
        "clinician@cfketamine.example",
        "pcp@lakeside.example",
        "clinician@cfketamine.example",
    ]
    # The provider's question on the accepted referral still waits for the clinic.
    coordinator = User.objects.get(email="coordinator@cfketamine.example")
    accepted = Thread.objects.get(
        referral__status=ReferralStatus.ACCEPTED, referral__practice__name=LAKESIDE
    )
    unread = {
        thread.pk: thread.unread_count  # type: ignore[attr-defined]
        for thread in selectors.thread_list_for_user(user=coordinator)
    }
    expected_unread = [
        message.sequence
        for message in accepted.messages.all()
        if coordinator.pk not in {message.author_id, message.caused_by_id}
    ]
    assert expected_unread
    assert unread[accepted.pk] == len(expected_unread)
    last = accepted.messages.order_by("-sequence").first()
    assert last is not None
    assert (last.kind, last.author_side) == ("user", "practice")
