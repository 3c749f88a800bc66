"""The e-mails: the reference number and a sign-in link, and never anything else."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from portal.notifications.models import EmailMode
from portal.notifications.services import notification_preference_update
from tests.factories import UserFactory
from tests.personas import Cast
from tests.portal.notifications.conftest import Notify

pytestmark = pytest.mark.django_db

CANARY = "Zebulon Canarywright"


def everything_sent() -> str:
    """Every byte of every message in the outbox: headers, text, HTML alternatives."""
    parts = []
    for message in mail.outbox:
        parts.append(message.message().as_string())
        parts.append(message.subject)
        parts.append(str(message.body))
        if isinstance(message, EmailMultiAlternatives):
            parts.extend(str(content) for content, _mimetype in message.alternatives)
    return "\n".join(parts)


def test_the_update_e_mail_holds_only_the_reference_and_the_sign_in_link(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]], settings: Any
) -> None:
    settings.SITE_URL = "https://portal.example.org"
    referral_id = uuid.uuid4()

    notify_committed(
        recipients=[cast.user("provider")],
        event="referral.accepted",
        reference="R-2026-00042",
        link=f"/referrals/{referral_id}/",
    )

    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert message.subject == "Update on referral R-2026-00042"
    assert message.to == [cast.user("provider").email]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.body == (
        "There is an update on referral R-2026-00042. Sign in to view it.\n"
        "\n"
        f"https://portal.example.org/referrals/{referral_id}/\n"
        "\n"
        "You receive this e-mail because you have an account on the referral portal. You can "
        "choose a daily summary instead in your notification preferences.\n"
    )
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<p>There is an update on referral R-2026-00042. Sign in to view it.</p>" in str(html)
    assert f'href="https://portal.example.org/referrals/{referral_id}/"' in str(html)


def test_a_patient_name_passed_anywhere_never_reaches_an_e_mail(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    recipient = UserFactory.create(email="dr.recipient@example.org", full_name=f"Dr {CANARY}")
    actor = UserFactory.create(email="coordinator.actor@example.org", full_name=CANARY)
    digest_user = UserFactory.create(email="digest.user@example.org", full_name=CANARY)
    notification_preference_update(actor=digest_user, email_mode=EmailMode.DAILY_DIGEST)
    slug = CANARY.lower().replace(" ", "_")

    # Free text where a number or a path belongs is refused outright...
    for field in ("reference", "event", "link"):
        with pytest.raises(ValueError, match=field):
            notify_committed(recipients=[recipient], actor=actor, **{field: CANARY})
    with pytest.raises(ValueError, match="link"):
        notify_committed(recipients=[recipient], link=f"/referrals/{CANARY}/")
    # ...and what is accepted (an event name is never e-mailed) leaves nothing in the mail.
    notify_committed(recipients=[recipient, digest_user], actor=actor, event=f"referral.{slug}")
    notify_committed(recipients=[recipient], actor=actor, event="referral.accepted", urgent=True)
    create_digests()

    assert len(mail.outbox) == 3
    sent = everything_sent()
    assert "R-2026-00042" in sent
    for fragment in (CANARY, "Zebulon", "Canarywright", "canarywright", "zebulon"):
        assert fragment not in sent


def test_the_digest_lists_reference_numbers_only(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]], settings: Any
) -> None:
    settings.SITE_URL = "https://portal.example.org"
    provider = cast.user("provider")
    notification_preference_update(actor=provider, email_mode=EmailMode.DAILY_DIGEST)
    for reference in ("R-2026-00051", "R-2026-00042", "R-2026-00042"):
        notify_committed(recipients=[provider], reference=reference)

    create_digests()

    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert message.subject == "Daily summary: 3 updates in the referral portal"
    assert message.to == [provider.email]
    assert message.body == (
        "You have 3 updates on referrals R-2026-00042, R-2026-00051. Sign in to view them.\n"
        "\n"
        "https://portal.example.org/notifications/\n"
        "\n"
        "You receive this summary once a day because you chose it in your notification "
        "preferences.\n"
    )
    [(html, _mimetype)] = message.alternatives
    assert "You have 3 updates on referrals R-2026-00042, R-2026-00051." in str(html)


def test_a_digest_of_one_update_speaks_in_the_singular(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    provider = cast.user("provider")
    notification_preference_update(actor=provider, email_mode=EmailMode.DAILY_DIGEST)
    notify_committed(recipients=[provider], reference="R-2026-00042")

    create_digests()

    [message] = mail.outbox
    assert message.subject == "Daily summary: 1 update in the referral portal"
    assert str(message.body).startswith(
        "You have 1 update on referral R-2026-00042. Sign in to view it.\n"
    )


def test_a_long_digest_lists_twenty_numbers_and_counts_the_rest(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    provider = cast.user("provider")
    notification_preference_update(actor=provider, email_mode=EmailMode.DAILY_DIGEST)
    references = [f"R-2026-{number:05d}" for number in range(1, 26)]
    for reference in references:
        notify_committed(recipients=[provider], reference=reference)

    create_digests()

    [message] = mail.outbox
    assert str(message.body).startswith(
        f"You have 25 updates on referrals {', '.join(references[:20])} and 5 more. "
        "Sign in to view them.\n"
    )


def test_a_general_thread_is_named_a_conversation_and_mixed_digests_list_numbers_only(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    provider, colleague = cast.user("provider"), cast.user("colleague")
    notification_preference_update(actor=colleague, email_mode=EmailMode.DAILY_DIGEST)
    notify_committed(recipients=[provider, colleague], reference="T-2026-00007")
    notify_committed(recipients=[colleague], reference="R-2026-00042")

    create_digests()

    immediate, digest = mail.outbox
    assert immediate.subject == "Update on conversation T-2026-00007"
    assert str(immediate.body).startswith(
        "There is an update on conversation T-2026-00007. Sign in to view it.\n"
    )
    assert str(digest.body).startswith(
        "You have 2 updates on R-2026-00042, T-2026-00007. Sign in to view them.\n"
    )
