"""What messaging does when a referral changes (registered in ``MessagingConfig.ready``).

The referral services call ``on_referral_event`` inside their transaction after recording each
timeline event: "created" creates the referral's thread, the lifecycle events post a system
message (``system_texts``). A failure here rolls the referral action back, as it should: the
timeline and the thread must not disagree.
"""

from __future__ import annotations

import uuid

from messaging import services
from messaging.models import Thread
from messaging.system_texts import system_text_for
from referrals.models import EventKind, Referral, ReferralEvent


def on_referral_event(event: ReferralEvent) -> None:
    if event.kind == EventKind.CREATED:
        services.referral_thread_ensure(referral=event.referral)
        return
    text = system_text_for(event)
    if text is None:
        return
    services.referral_system_message_post(referral=event.referral, text=text, caused_by=event.actor)


def referral_thread_public_id(referral: Referral) -> uuid.UUID | None:
    """The referral detail's ``thread``: the public id of the referral's thread, if any."""
    return (
        Thread.objects.filter(referral_id=referral.pk).values_list("public_id", flat=True).first()
    )
