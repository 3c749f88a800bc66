"""Retention: a clinic setting; expired messages move to the archive in transactional batches and
are purged after the grace period; a legal hold on the referral stops both."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import time_machine

from messaging import selectors, services, tasks
from messaging.models import ArchivedMessage, Message, MessageAttachment, RetentionPolicy, Thread
from portal.api.errors import Forbidden, ServiceError
from portal.audit.models import AuditEvent
from portal.crypto.models import EncryptedFile
from portal.crypto.storage import stored_file_path
from referrals.models import Referral
from referrals.services import referral_set_legal_hold
from tests.messaging.conftest import Send, pdf_upload
from tests.personas import Cast

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2031, 1, 15, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
CommitCapture = Callable[..., Any]


def _policy(cast: Cast, days: int | None = 30, grace: int = 7) -> RetentionPolicy:
    return services.retention_policy_set(
        actor=cast.user("admin"),
        clinic=cast.clinic,
        message_retention_days=days,
        archive_grace_days=grace,
    )


def _send_at(
    send: Send, moment: datetime.datetime, thread: Thread, body: str, **kw: Any
) -> Message:
    with time_machine.travel(moment, tick=False):
        return send("provider", thread, body, **kw)


def _archive_at(moment: datetime.datetime, **kwargs: Any) -> int:
    with time_machine.travel(moment, tick=False):
        return services.messages_archive_expired(**kwargs)


def _purge_at(moment: datetime.datetime, capture: CommitCapture) -> int:
    with time_machine.travel(moment, tick=False), capture(execute=True):
        return services.archived_messages_purge()


def _live_bodies(thread: Thread) -> list[str | None]:
    return [m.body for m in Message.objects.filter(thread=thread).order_by("sequence")]


def test_expired_messages_move_to_the_archive_with_their_files(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    old = _send_at(send, NOW - 40 * DAY, referral_thread, "Old one.", attachments=[pdf_upload()])
    _send_at(send, NOW - 31 * DAY, referral_thread, "Old two.")
    _send_at(send, NOW - 10 * DAY, referral_thread, "Recent.")
    attachment = MessageAttachment.objects.get(message=old)
    _policy(cast)
    assert selectors.thread_unread_total_for_user(user=cast.user("coordinator")) == 3

    assert _archive_at(NOW) == 2

    assert _live_bodies(referral_thread) == ["Recent."]
    archived = list(ArchivedMessage.objects.order_by("sequence"))
    assert [(a.public_id, a.sequence, a.body, a.author_id) for a in archived] == [
        (old.public_id, 1, "Old one.", cast.user("provider").pk),
        (archived[1].public_id, 2, "Old two.", cast.user("provider").pk),
    ]
    assert archived[0].message_created_at == NOW - 40 * DAY
    assert archived[0].attachments == [
        {
            "public_id": str(attachment.public_id),
            "stored_name": attachment.stored_name,
            "size": attachment.size,
            "sha256": attachment.sha256,
            "content_type": "application/pdf",
            "original_name": "letter.pdf",
        }
    ]
    assert MessageAttachment.objects.count() == 0
    assert stored_file_path(attachment.stored_name).is_file()
    assert selectors.thread_unread_total_for_user(user=cast.user("coordinator")) == 1
    event = AuditEvent.objects.get(action="messaging.messages_archived")
    assert (event.object_id, event.details) == (str(referral_thread.public_id), {"messages": 2})

    assert _archive_at(NOW + DAY) == 0


def test_archiving_runs_in_batches(cast: Cast, general_thread: Thread, send: Send) -> None:
    Message.objects.filter(thread=general_thread).update(created_at=NOW - 60 * DAY)
    for number in range(4):
        _send_at(send, NOW - 50 * DAY, general_thread, f"Old {number}.")
    _policy(cast)

    assert _archive_at(NOW, batch_size=2) == 5

    assert Message.objects.filter(thread=general_thread).count() == 0
    assert ArchivedMessage.objects.count() == 5
    # One transaction, and one audit event, per batch of at most two.
    batches = AuditEvent.objects.filter(action="messaging.messages_archived").order_by("sequence")
    assert [event.details["messages"] for event in batches] == [2, 2, 1]


def test_archived_messages_are_purged_after_the_grace_period(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
) -> None:
    old = _send_at(send, NOW - 40 * DAY, referral_thread, "Old.", attachments=[pdf_upload()])
    path = stored_file_path(MessageAttachment.objects.get(message=old).stored_name)
    _policy(cast, days=30, grace=7)
    _archive_at(NOW)

    assert (
        _purge_at(NOW + 7 * DAY - datetime.timedelta(seconds=1), django_capture_on_commit_callbacks)
        == 0
    )
    assert ArchivedMessage.objects.count() == 1

    assert (
        _purge_at(NOW + 7 * DAY + datetime.timedelta(seconds=1), django_capture_on_commit_callbacks)
        == 1
    )
    assert ArchivedMessage.objects.count() == 0
    assert EncryptedFile.objects.count() == 0
    assert not path.exists()
    assert AuditEvent.objects.get(action="messaging.messages_purged").details == {"messages": 1}


def test_a_legal_hold_stops_archiving_and_purging(
    cast: Cast,
    referral: Referral,
    referral_thread: Thread,
    general_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
) -> None:
    _send_at(send, NOW - 40 * DAY, referral_thread, "Held.")
    Message.objects.filter(thread=general_thread).update(created_at=NOW - 40 * DAY)
    _policy(cast)
    referral_set_legal_hold(actor=cast.user("admin"), referral=referral, legal_hold=True)

    assert _archive_at(NOW) == 1  # the general thread's message only
    assert _live_bodies(referral_thread) == ["Held."]

    referral_set_legal_hold(actor=cast.user("admin"), referral=referral, legal_hold=False)
    assert _archive_at(NOW) == 1
    referral_set_legal_hold(actor=cast.user("admin"), referral=referral, legal_hold=True)

    assert _purge_at(NOW + 60 * DAY, django_capture_on_commit_callbacks) == 1  # general only
    assert [archived.body for archived in ArchivedMessage.objects.all()] == ["Held."]

    referral_set_legal_hold(actor=cast.user("admin"), referral=referral, legal_hold=False)
    assert _purge_at(NOW + 60 * DAY, django_capture_on_commit_callbacks) == 1
    assert ArchivedMessage.objects.count() == 0


def test_without_a_retention_period_nothing_moves(
    cast: Cast, general_thread: Thread, django_capture_on_commit_callbacks: CommitCapture
) -> None:
    Message.objects.filter(thread=general_thread).update(created_at=NOW - 4000 * DAY)

    assert _archive_at(NOW) == 0
    _policy(cast, days=None)
    assert _archive_at(NOW) == 0
    assert _purge_at(NOW, django_capture_on_commit_callbacks) == 0
    assert Message.objects.count() == 1


def test_the_periodic_task_archives_then_purges(
    cast: Cast, general_thread: Thread, django_capture_on_commit_callbacks: CommitCapture
) -> None:
    Message.objects.filter(thread=general_thread).update(created_at=NOW - 40 * DAY)
    _policy(cast, days=30, grace=0)

    with time_machine.travel(NOW, tick=True), django_capture_on_commit_callbacks(execute=True):
        tasks.apply_retention.delay()

    # Archived and, with no grace period, purged in the same run.
    assert Message.objects.count() == 0
    assert ArchivedMessage.objects.count() == 0
    assert AuditEvent.objects.filter(action="messaging.messages_purged").count() == 1


def test_only_an_admin_of_the_clinic_sets_the_retention(cast: Cast) -> None:
    for persona in ("provider", "coordinator", "clinician", "outsider"):
        with pytest.raises(Forbidden):
            services.retention_policy_set(
                actor=cast.user(persona), clinic=cast.clinic, message_retention_days=30
            )
    assert RetentionPolicy.objects.count() == 0

    policy = _policy(cast, days=2555, grace=30)

    assert (policy.message_retention_days, policy.archive_grace_days) == (2555, 30)
    event = AuditEvent.objects.get(action="messaging.retention_set")
    assert (event.actor, event.object_id, event.details) == (
        cast.user("admin"),
        str(cast.clinic.public_id),
        {"message_retention_days": 2555, "archive_grace_days": 30},
    )


@pytest.mark.parametrize(
    ("days", "grace"), [(0, 30), (-1, 30), (36_501, 30), (30, -1), (30, 3_651), (True, 30)]
)
def test_bad_retention_values_are_refused(cast: Cast, days: Any, grace: Any) -> None:
    with pytest.raises(ServiceError) as refused:
        _policy(cast, days=days, grace=grace)

    assert refused.value.status_code == 400
    assert RetentionPolicy.objects.count() == 0
