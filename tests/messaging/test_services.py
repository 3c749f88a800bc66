"""Messaging services against the database: threads, sending, system messages, retraction,
marking read, and what a removed membership loses."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from messaging import selectors, services
from messaging import tasks as messaging_tasks
from messaging.models import (
    BODY_MAX_LENGTH,
    Message,
    MessageAttachment,
    MessageKind,
    Thread,
    ThreadKind,
    ThreadReadState,
)
from messaging.selectors import ATTACHMENT_PURPOSE
from portal.accounts.selectors import practice_members_for_practice
from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.models import AuditEvent
from portal.crypto.models import EncryptedFile
from portal.crypto.storage import stored_file_path
from portal.notifications.models import EmailDelivery, EmailMode, Notification
from portal.notifications.services import notification_preference_update
from portal.uploads import UploadRejected
from referrals import hooks
from referrals import services as referral_services
from referrals.models import EventKind, Referral, ReferralStatus
from tests.messaging.conftest import CANARY, Send, pdf_upload, text_upload
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data

pytestmark = pytest.mark.django_db

CommitCapture = Callable[..., Any]


def _bodies(thread: Thread) -> list[tuple[str, str | None]]:
    return [
        (message.kind, message.body)
        for message in Message.objects.filter(thread=thread).order_by("sequence")
    ]


# --- referral threads and system messages --------------------------------------------------------


def test_a_new_referral_gets_its_thread_and_the_detail_names_it(cast: Cast) -> None:
    referral = referral_services.referral_create(
        actor=cast.user("provider"), data=complete_referral_data()
    )

    thread = Thread.objects.get(referral=referral)
    assert (thread.kind, thread.practice_id, thread.clinic_id, thread.number) == (
        ThreadKind.REFERRAL,
        cast.practice.pk,
        cast.clinic.pk,
        None,
    )
    assert thread.subject == f"Referral {referral.number}"
    assert thread.reference == referral.number
    assert Message.objects.filter(thread=thread).count() == 0
    assert hooks.referral_thread_id(referral) == thread.public_id


def test_the_clinic_takes_part_in_a_referral_thread_only_once_it_is_submitted(cast: Cast) -> None:
    provider, coordinator = cast.user("provider"), cast.user("coordinator")
    referral = referral_services.referral_create(actor=provider, data=complete_referral_data())
    thread = Thread.objects.get(referral=referral)

    with pytest.raises(NotFound):
        selectors.thread_get_for_user(user=coordinator, public_id=thread.public_id)
    assert services.thread_participants(thread) == list(
        practice_members_for_practice(cast.practice)
    )

    referral_services.referral_submit(actor=provider, referral=referral)
    thread = Thread.objects.select_related("referral").get(pk=thread.pk)

    assert selectors.thread_get_for_user(user=coordinator, public_id=thread.public_id) == thread
    assert {user.email for user in services.thread_participants(thread)} == {
        f"{name}@cast.example"
        for name in ("provider", "colleague", "staff", "coordinator", "clinician", "admin")
    }


def test_each_lifecycle_event_posts_a_system_message(cast: Cast) -> None:
    provider, coordinator = cast.user("provider"), cast.user("coordinator")
    referral = referral_services.referral_create(actor=provider, data=complete_referral_data())
    referral_services.referral_submit(actor=provider, referral=referral)
    referral_services.referral_review(actor=coordinator, referral=referral)
    referral_services.referral_request_info(
        actor=coordinator, referral=referral, question="Please send the last evaluation."
    )
    referral_services.referral_submit(
        actor=provider, referral=referral, answer="The evaluation is attached."
    )
    referral_services.referral_accept(actor=coordinator, referral=referral)
    consult_at = datetime.datetime(2031, 3, 4, 15, 0, tzinfo=datetime.UTC)
    referral_services.referral_schedule(actor=coordinator, referral=referral, consult_at=consult_at)
    services.system_message_post(referral=referral, text="Progress report 2 is ready.")

    thread = Thread.objects.get(referral=referral)
    messages = list(thread.messages.order_by("sequence"))
    assert [(m.kind, m.author_id, m.caused_by_id, m.body) for m in messages] == [
        ("system", None, provider.pk, f"Referral {referral.number} submitted by Provider Persona."),
        ("system", None, coordinator.pk, "Picked up for review by Coordinator Persona."),
        (
            "system",
            None,
            coordinator.pk,
            "Information requested by Coordinator Persona: Please send the last evaluation.",
        ),
        (
            "system",
            None,
            provider.pk,
            "Information provided by Provider Persona: The evaluation is attached.",
        ),
        ("system", None, coordinator.pk, "Accepted by Coordinator Persona."),
        (
            "system",
            None,
            coordinator.pk,
            "Consult scheduled for Tuesday, March 4, 2031 at 10:00 AM EST.",
        ),
        ("system", None, None, "Progress report 2 is ready."),
    ]
    assert [m.sequence for m in messages] == [1, 2, 3, 4, 5, 6, 7]
    thread.refresh_from_db()
    assert (thread.last_sequence, thread.last_message_at) == (7, messages[-1].created_at)
    # System messages are not news for whoever caused them.
    assert selectors.thread_unread_total_for_user(user=provider) == 5
    assert selectors.thread_unread_total_for_user(user=coordinator) == 3
    assert selectors.thread_unread_total_for_user(user=cast.user("clinician")) == 7


def test_system_message_post_creates_a_missing_thread_and_notifies_nobody(
    cast: Cast, referral: Referral
) -> None:
    assert not Thread.objects.filter(referral=referral).exists()

    message = services.system_message_post(referral=referral, text="Progress report 1 is ready.")

    assert message.thread.referral == referral
    assert (message.kind, message.author, message.caused_by) == (MessageKind.SYSTEM, None, None)
    assert Notification.objects.count() == 0
    event = AuditEvent.objects.get(action="message.system_posted")
    assert (event.object_id, event.actor) == (str(message.public_id), None)


def test_a_referral_action_rolls_back_with_its_system_message(cast: Cast) -> None:
    referral = referral_services.referral_create(
        actor=cast.user("provider"), data=complete_referral_data()
    )

    def submit_then_fail() -> None:
        with transaction.atomic():
            referral_services.referral_submit(actor=cast.user("provider"), referral=referral)
            raise RuntimeError("the caller fails after the action")

    with pytest.raises(RuntimeError):
        submit_then_fail()

    assert Message.objects.count() == 0
    assert Referral.objects.get(pk=referral.pk).status == ReferralStatus.DRAFT


# --- general threads -----------------------------------------------------------------------------


def test_a_provider_opens_a_general_thread_and_the_others_are_notified(
    cast: Cast, django_capture_on_commit_callbacks: CommitCapture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        thread = services.thread_create(
            actor=cast.user("provider"), subject="  Scheduling   question ", body="Any slots?"
        )

    year = timezone.localtime().year
    assert (thread.kind, thread.number, thread.subject) == (
        ThreadKind.GENERAL,
        f"T-{year}-00001",
        "Scheduling question",
    )
    assert (thread.practice, thread.clinic, thread.created_by) == (
        cast.practice,
        cast.clinic,
        cast.user("provider"),
    )
    message = thread.messages.get()
    assert (message.sequence, message.author, message.author_side, message.body) == (
        1,
        cast.user("provider"),
        "practice",
        "Any slots?",
    )
    recipients = {n.recipient.email for n in Notification.objects.select_related("recipient")}
    assert recipients == {
        f"{name}@cast.example"
        for name in ("colleague", "staff", "coordinator", "clinician", "admin")
    }
    assert set(Notification.objects.values_list("event", "reference", "link")) == {
        ("message.new", thread.number, f"/messages/{thread.public_id}/")
    }
    assert sorted(email.to[0] for email in mail.outbox) == sorted(recipients)
    second = services.thread_create(actor=cast.user("staff"), subject="Fax", body="Fax number?")
    assert second.number == f"T-{year}-00002"


def test_clinic_staff_open_a_thread_with_a_named_practice(cast: Cast) -> None:
    coordinator = cast.user("coordinator")

    with pytest.raises(ServiceError) as missing:
        services.thread_create(actor=coordinator, subject="Hello", body="Hi")
    assert missing.value.extra == {
        "fields": {"practice": "Required: choose the practice this conversation is with."}
    }

    thread = services.thread_create(
        actor=coordinator,
        subject="New referral form",
        body="We updated the form.",
        practice_id=cast.other_practice.public_id,
    )
    assert (thread.practice, thread.clinic) == (cast.other_practice, cast.clinic)
    assert thread.messages.get().author_side == "clinic"
    with pytest.raises(NotFound):
        selectors.thread_get_for_user(user=cast.user("provider"), public_id=thread.public_id)
    assert selectors.thread_get_for_user(user=cast.user("outsider"), public_id=thread.public_id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"subject": "", "body": "Hi"}, "subject"),
        ({"subject": "x" * 201, "body": "Hi"}, "subject"),
        ({"subject": "Hello", "body": "   "}, "body"),
        ({"subject": "Hello", "body": "x" * (BODY_MAX_LENGTH + 1)}, "body"),
        ({"subject": "Hello", "body": "Hi", "practice_id": "other"}, "practice"),
    ],
)
def test_a_refused_general_thread_leaves_nothing(
    cast: Cast, kwargs: dict[str, Any], field: str
) -> None:
    if kwargs.get("practice_id") == "other":
        kwargs["practice_id"] = cast.other_practice.public_id

    with pytest.raises(ServiceError) as refused:
        services.thread_create(actor=cast.user("provider"), **kwargs)

    assert refused.value.status_code == 400
    assert list(refused.value.extra["fields"]) == [field]
    assert Thread.objects.count() == 0
    assert Message.objects.count() == 0
    assert Notification.objects.count() == 0


# --- sending -------------------------------------------------------------------------------------


def test_sending_stores_the_message_advances_the_thread_and_audits(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = send("provider", referral_thread, "  Is Tuesday possible?\n")
    second = send("coordinator", referral_thread, "Yes.")

    assert (first.sequence, first.body, first.author_side) == (
        1,
        "Is Tuesday possible?",
        "practice",
    )
    assert (second.sequence, second.author_side) == (2, "clinic")
    referral_thread.refresh_from_db()
    assert (referral_thread.last_sequence, referral_thread.last_message_at) == (
        2,
        second.created_at,
    )
    events = AuditEvent.objects.filter(action="message.sent").order_by("sequence")
    assert [(e.actor_id, e.object_id, e.details) for e in events] == [
        (
            cast.user("provider").pk,
            str(first.public_id),
            {"thread": str(referral_thread.public_id), "attachments": 0},
        ),
        (
            cast.user("coordinator").pk,
            str(second.public_id),
            {"thread": str(referral_thread.public_id), "attachments": 0},
        ),
    ]


OTHERS_THAN_PROVIDER = {
    f"{name}@cast.example" for name in ("colleague", "staff", "coordinator", "clinician", "admin")
}


def _notified() -> list[str]:
    return sorted(Notification.objects.values_list("recipient__email", flat=True))


def test_participants_are_notified_by_a_task_after_the_commit_exactly_once(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        messaging_tasks.notify_participants,
        "delay",
        lambda *args: published.append(("messaging.notify_participants", args)),
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = send("provider", referral_thread, "A question.")

    # The request did not notify anyone itself: it published one task with the message's id.
    assert len(callbacks) == 1
    assert published == [("messaging.notify_participants", (message.pk,))]
    assert Notification.objects.count() == 0
    assert Message.objects.get(pk=message.pk).notify_pending is True

    with django_capture_on_commit_callbacks(execute=True):
        assert services.message_participants_notify(message_id=message.pk) is True
        # A redelivered task, or the re-drive racing it, finds nothing left to do.
        assert services.message_participants_notify(message_id=message.pk) is False

    assert _notified() == sorted(OTHERS_THAN_PROVIDER)
    assert set(Notification.objects.values_list("event", "link")) == {
        ("message.new", f"/messages/{referral_thread.public_id}/")
    }
    assert sorted(email.to[0] for email in mail.outbox) == sorted(OTHERS_THAN_PROVIDER)
    assert Message.objects.get(pk=message.pk).notify_pending is False


def test_a_lost_notification_task_is_re_driven_after_a_minute_and_sent_once(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broker_down(*args: Any) -> None:
        raise OSError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(messaging_tasks.notify_participants, "delay", broker_down)
    sent_at = timezone.now().replace(microsecond=0)
    with time_machine.travel(sent_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        message = send("provider", referral_thread, "A question.")
    assert Message.objects.get(pk=message.pk).notify_pending is True
    monkeypatch.undo()

    with time_machine.travel(sent_at + datetime.timedelta(seconds=59), tick=False):
        assert services.messages_notify_pending() == []
    assert Notification.objects.count() == 0

    with (
        time_machine.travel(sent_at + datetime.timedelta(seconds=61), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.messages_notify_pending() == [message.pk]
        assert services.messages_notify_pending() == []

    assert _notified() == sorted(OTHERS_THAN_PROVIDER)
    assert len(mail.outbox) == len(OTHERS_THAN_PROVIDER)


def test_a_message_retracted_before_its_notification_ran_is_not_announced(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        message = send("provider", referral_thread, "Wrong thread, sorry.")
    services.message_retract(actor=cast.user("provider"), message=message)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.message_participants_notify(message_id=message.pk) is True

    assert Notification.objects.count() == 0
    assert mail.outbox == []
    assert Message.objects.get(pk=message.pk).notify_pending is False


def test_the_author_is_not_notified_and_digest_users_get_no_immediate_email(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
) -> None:
    notification_preference_update(
        actor=cast.user("coordinator"), email_mode=EmailMode.DAILY_DIGEST
    )

    with django_capture_on_commit_callbacks(execute=True):
        send("provider", referral_thread, "A question.")

    notified = dict(Notification.objects.values_list("recipient__email", "email_mode"))
    assert notified == {
        "colleague@cast.example": "immediate",
        "staff@cast.example": "immediate",
        "coordinator@cast.example": "daily_digest",
        "clinician@cast.example": "immediate",
        "admin@cast.example": "immediate",
    }
    assert sorted(email.to[0] for email in mail.outbox) == [
        "admin@cast.example",
        "clinician@cast.example",
        "colleague@cast.example",
        "staff@cast.example",
    ]
    assert not EmailDelivery.objects.filter(recipient=cast.user("coordinator")).exists()
    for email in mail.outbox:
        assert referral_thread.referral is not None
        assert referral_thread.referral.number in email.body
        assert "A question" not in email.body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "required"),
        (" \n\t ", "required"),
        ("x" * (BODY_MAX_LENGTH + 1), "too_long"),
        ("null \x00 byte", "invalid"),
        (42, "invalid"),
        (None, "invalid"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(
    cast: Cast, referral_thread: Thread, send: Send, body: Any, code: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        send("provider", referral_thread, body)

    assert (refused.value.status_code, refused.value.code) == (400, code)
    assert Message.objects.count() == 0
    assert Notification.objects.count() == 0
    referral_thread.refresh_from_db()
    assert referral_thread.last_sequence == 0


def test_a_body_of_exactly_20000_characters_is_accepted(
    referral_thread: Thread, send: Send
) -> None:
    message = send("provider", referral_thread, "x" * BODY_MAX_LENGTH)

    assert len(Message.objects.get(pk=message.pk).body or "") == BODY_MAX_LENGTH


def test_an_outsider_cannot_post_and_the_denial_is_audited(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    with pytest.raises(NotFound):
        send("outsider", referral_thread, "Let me in.")

    assert Message.objects.count() == 0
    assert Notification.objects.count() == 0
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.object_id) == (
        "message.send",
        cast.user("outsider"),
        str(referral_thread.public_id),
    )


def test_attachments_are_stored_encrypted_and_read_back(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    secret_text = f"{CANARY} in an attachment\n"
    message = send(
        "provider",
        referral_thread,
        "Two files.",
        attachments=[pdf_upload(), text_upload(text=secret_text)],
    )

    attachments = list(MessageAttachment.objects.filter(message=message).order_by("id"))
    assert [(a.original_name, a.content_type, a.uploaded_by) for a in attachments] == [
        ("letter.pdf", "application/pdf", cast.user("provider")),
        ("note.txt", "text/plain", cast.user("provider")),
    ]
    on_disk = stored_file_path(attachments[1].stored_name).read_bytes()
    assert secret_text.encode() not in on_disk
    assert EncryptedFile.objects.filter(purpose=ATTACHMENT_PURPOSE).count() == 2
    found, chunks = selectors.message_attachment_open_for_user(
        user=cast.user("coordinator"), public_id=attachments[1].public_id
    )
    assert b"".join(chunks) == secret_text.encode()
    chunks.close()
    assert AuditEvent.objects.filter(
        action="message_attachment.read", object_id=str(found.public_id)
    ).exists()
    with pytest.raises(NotFound):
        selectors.message_attachment_open_for_user(
            user=cast.user("outsider"), public_id=attachments[1].public_id
        )


def test_a_message_may_be_files_only_but_not_more_than_five(
    referral_thread: Thread, send: Send
) -> None:
    message = send("provider", referral_thread, "", attachments=[pdf_upload()])
    assert message.body == ""

    with pytest.raises(ServiceError) as too_many:
        send("provider", referral_thread, "Six.", attachments=[pdf_upload() for _ in range(6)])
    assert too_many.value.extra == {"fields": {"attachments": "At most 5 files per message."}}
    assert Message.objects.count() == 1


def test_a_refused_file_leaves_no_message_and_no_file(
    referral_thread: Thread, send: Send, media_root: Any
) -> None:
    html = text_upload(name="page.txt", text="<script>alert(1)</script>\n")

    with pytest.raises(UploadRejected) as refused:
        send("provider", referral_thread, "See attached.", attachments=[html])

    assert refused.value.status_code == 415
    assert Message.objects.count() == 0
    assert MessageAttachment.objects.count() == 0
    assert EncryptedFile.objects.count() == 0
    assert not any(path.is_file() for path in media_root.rglob("*"))


# --- retraction ----------------------------------------------------------------------------------

SENT_AT = datetime.datetime(2030, 5, 6, 14, 0, tzinfo=datetime.UTC)


def _raw_body(message: Message) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM messaging_message WHERE id = %s", [message.pk])
        row = cursor.fetchone()
    assert row is not None
    return row[0]


def test_the_author_retracts_within_15_minutes_and_the_body_is_destroyed(
    cast: Cast,
    referral_thread: Thread,
    send: Send,
    django_capture_on_commit_callbacks: CommitCapture,
) -> None:
    with time_machine.travel(SENT_AT, tick=False):
        message = send("provider", referral_thread, CANARY, attachments=[pdf_upload()])
    attachment = MessageAttachment.objects.get(message=message)
    path = stored_file_path(attachment.stored_name)
    assert path.is_file()

    with (
        time_machine.travel(SENT_AT + datetime.timedelta(minutes=15), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        retracted = services.message_retract(actor=cast.user("provider"), message=message)

    stored = Message.objects.get(pk=message.pk)
    assert (stored.body, stored.retracted_at, stored.retracted_by) == (
        None,
        SENT_AT + datetime.timedelta(minutes=15),
        cast.user("provider"),
    )
    assert retracted.is_retracted
    assert _raw_body(stored) is None
    assert MessageAttachment.objects.count() == 0
    assert EncryptedFile.objects.count() == 0
    assert not path.exists()
    event = AuditEvent.objects.get(action="message.retracted")
    assert (event.actor, event.object_id, event.occurred_at, event.details) == (
        cast.user("provider"),
        str(message.public_id),
        SENT_AT + datetime.timedelta(minutes=15),
        {"thread": str(referral_thread.public_id), "attachments_destroyed": 1},
    )


def test_retraction_after_15_minutes_is_refused(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    with time_machine.travel(SENT_AT, tick=False):
        message = send("provider", referral_thread, "Too late to take back.")

    late = SENT_AT + datetime.timedelta(minutes=15, seconds=1)
    with time_machine.travel(late, tick=False), pytest.raises(Conflict) as refused:
        services.message_retract(actor=cast.user("provider"), message=message)

    assert refused.value.code == "retraction_window_closed"
    assert Message.objects.get(pk=message.pk).body == "Too late to take back."
    assert not AuditEvent.objects.filter(action="message.retracted").exists()


def test_only_the_author_retracts_and_only_once(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    message = send("provider", referral_thread, "Mine.")
    system = services.system_message_post(
        referral=referral_thread.referral,  # type: ignore[arg-type]
        text="Progress report 1 is ready.",
    )

    with pytest.raises(Forbidden):
        services.message_retract(actor=cast.user("colleague"), message=message)
    with pytest.raises(NotFound):
        services.message_retract(actor=cast.user("outsider"), message=message)
    with pytest.raises(Forbidden):
        services.message_retract(actor=cast.user("coordinator"), message=system)
    assert Message.objects.get(pk=message.pk).body == "Mine."
    denied = AuditEvent.objects.filter(outcome="denied", action="message.retract")
    assert sorted(denied.values_list("actor__email", flat=True)) == [
        "colleague@cast.example",
        "coordinator@cast.example",
        "outsider@cast.example",
    ]

    services.message_retract(actor=cast.user("provider"), message=message)
    with pytest.raises(Conflict) as again:
        services.message_retract(actor=cast.user("provider"), message=message)
    assert again.value.code == "already_retracted"


# --- read state ----------------------------------------------------------------------------------


def test_marking_read_is_idempotent_and_never_moves_backwards(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = send("coordinator", referral_thread, "One.")
    send("coordinator", referral_thread, "Two.")
    provider = cast.user("provider")

    assert services.thread_mark_read(actor=provider, thread=referral_thread) is True
    assert services.thread_mark_read(actor=provider, thread=referral_thread) is False
    assert services.thread_mark_read(actor=provider, thread=referral_thread, through=first) is False

    state = ThreadReadState.objects.get(user=provider, thread=referral_thread)
    assert state.last_read_sequence == 2
    assert AuditEvent.objects.filter(action="thread.read_marked").count() == 1


def test_marking_read_is_refused_to_outsiders(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    send("coordinator", referral_thread, "One.")

    with pytest.raises(NotFound):
        services.thread_mark_read(actor=cast.user("outsider"), thread=referral_thread)

    assert ThreadReadState.objects.filter(user=cast.user("outsider")).count() == 0


# --- derived participants ------------------------------------------------------------------------


def test_a_removed_membership_loses_the_thread_on_the_next_call(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    coordinator = cast.user("coordinator")
    send("provider", referral_thread, "Hello clinic.")
    assert selectors.thread_get_for_user(user=coordinator, public_id=referral_thread.public_id)

    membership = cast["coordinator"].membership
    assert membership is not None
    membership.is_active = False
    membership.save(update_fields=["is_active"])

    with pytest.raises(NotFound):
        selectors.thread_get_for_user(user=coordinator, public_id=referral_thread.public_id)
    assert list(selectors.thread_list_for_user(user=coordinator)) == []
    assert selectors.thread_unread_total_for_user(user=coordinator) == 0
    with pytest.raises(NotFound):
        send("coordinator", referral_thread, "Still here?")
    assert coordinator not in services.thread_participants(referral_thread)


def test_a_signed_report_is_announced_in_the_thread_but_an_unsigned_one_is_not(
    cast: Cast,
) -> None:
    provider, clinician = cast.user("provider"), cast.user("clinician")
    referral = referral_services.referral_create(actor=provider, data=complete_referral_data())
    referral_services.referral_submit(actor=provider, referral=referral)
    thread = Thread.objects.get(referral=referral)
    before = thread.messages.count()

    referral_services.referral_event_record(
        referral=referral,
        kind=EventKind.REPORT_READY,
        actor=None,
        note="Progress report 2 (interim) is ready for review.",
    )
    referral_services.referral_event_record(
        referral=referral,
        kind=EventKind.REPORT_SIGNED,
        actor=clinician,
        note="Progress report 2 (interim) was signed and delivered to the referring provider.",
    )

    new_messages = list(thread.messages.order_by("sequence"))[before:]
    assert [(m.kind, m.body) for m in new_messages] == [
        (
            "system",
            "Progress report 2 (interim) was signed and delivered to the referring provider.",
        )
    ]
