"""Every write to messaging: one function per action, each in one transaction.

- ``thread_create``: a general thread between a practice and the clinic, with its first message.
- ``referral_thread_ensure``: the referral's thread (the referral event handler creates it when
  the referral is created; referrals older than messaging get theirs on their next event).
- ``message_send``: validate, store encrypted (body and attachments), advance the thread, mark
  it read for the author, audit, and have every other participant notified (no PHI: the
  reference number and a link) by a worker after the commit: ``message_participants_notify``,
  with ``messages_notify_pending`` re-driving what a lost task left undone.
- ``system_message_post`` (also called by the reports app) and the referral event handler's
  system messages: no author, no notification (the referral's own notifications cover them).
- ``message_retract``: the author, within 15 minutes; the body and attachments are destroyed,
  the marker stays, the audit keeps who and when.
- ``thread_mark_read``: idempotent, never moves a read position backwards.
- ``messages_escalate_unread``: practice messages nobody at the clinic read for 24 hours are
  escalated to the clinic's coordinators, once per message.
- ``retention_policy_set``, ``messages_archive_expired``, ``archived_messages_purge``: retention.

Errors: ``NotFound`` (404, for outsiders: the same as a missing thread, and audited as denied),
``Forbidden`` (403, a participant who may not do this), ``Conflict`` (409, not in this state),
``ServiceError`` (400, bad input; ``UploadRejected`` 400/413/415/503 for files).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import IO, Any, Final, TypeVar

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

# ``tasks`` as a module: it imports this module back (resolved at call time).
from messaging import permissions, tasks
from messaging.models import (
    BODY_MAX_LENGTH,
    PAGE_ATTACHMENTS,
    SUBJECT_MAX_LENGTH,
    ArchivedMessage,
    AuthorSide,
    Message,
    MessageAttachment,
    MessageKind,
    RetentionPolicy,
    Thread,
    ThreadKind,
    ThreadNumberSequence,
    ThreadReadState,
)
from messaging.selectors import ATTACHMENT_PURPOSE
from portal.accounts.models import CLINIC_ROLES, Membership, Organization, Role, User
from portal.accounts.permissions import role_in
from portal.accounts.selectors import clinic_staff_for_clinic
from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.services import audit_denied, audit_record
from portal.core.queue import enqueue_on_commit
from portal.crypto.storage import delete_encrypted_file, store_encrypted_file
from portal.notifications.services import notify
from portal.uploads import ValidatedUpload, validate_upload
from referrals.models import Referral
from referrals.permissions import Access, access_for

logger = logging.getLogger(__name__)

THREAD_PATH: Final = "/messages/{public_id}/"
MAX_ATTACHMENTS: Final = 5
ESCALATE_AFTER: Final = timedelta(hours=24)
ESCALATION_BATCH: Final = 200
RETENTION_BATCH: Final = 500
NEW_MESSAGE_EVENT: Final = "message.new"
# A message whose notifications are still pending this long after it was sent lost its task.
NOTIFY_REDRIVE_MIN_AGE: Final = timedelta(minutes=1)
NOTIFY_REDRIVE_BATCH: Final = 200
UNANSWERED_EVENT: Final = "message.unanswered"

T = TypeVar("T")


def thread_portal_path(thread: Thread) -> str:
    """The thread's portal page (the link in notifications)."""
    return THREAD_PATH.format(public_id=thread.public_id)


def _invalid(field: str, detail: str, code: str = "invalid") -> ServiceError:
    return ServiceError(detail, code=code, extra={"fields": {field: detail}})


class _Denied(Exception):
    """Raised inside a transaction so it rolls back; the denial is audited after the rollback."""

    def __init__(self, error: ServiceError, action: str, object_type: str, object_id: Any) -> None:
        super().__init__(error.detail)
        self.error = error
        self.action = action
        self.object_type = object_type
        self.object_id = object_id


def _run_denying(actor: User, work: Callable[[], T]) -> T:
    """Run ``work`` in a transaction; a ``_Denied`` rolls it back, then leaves an audit row that
    survives whatever the caller's transaction does next."""
    try:
        with transaction.atomic():
            return work()
    except _Denied as denied:
        audit_denied(
            actor=actor,
            action=denied.action,
            object_type=denied.object_type,
            object_id=denied.object_id,
        )
        raise denied.error from None


# --- validation ----------------------------------------------------------------------------------


def validated_body(body: Any, *, allow_empty: bool = False) -> str:
    """The body to store: text of at most 20,000 characters (surrounding whitespace removed),
    not empty unless the message carries attachments."""
    if not isinstance(body, str):
        raise _invalid("body", "The message must be text.")
    text = body.strip()
    if len(text) > BODY_MAX_LENGTH:
        raise _invalid(
            "body", f"A message can hold at most {BODY_MAX_LENGTH:,} characters.", "too_long"
        )
    if "\x00" in text:
        raise _invalid("body", "The message contains a null character.")
    if not text and not allow_empty:
        raise _invalid("body", "Write a message.", "required")
    return text


def validated_subject(subject: Any) -> str:
    if not isinstance(subject, str):
        raise _invalid("subject", "The subject must be text.")
    text = " ".join(subject.split())
    if not text:
        raise _invalid("subject", "A subject is required.", "required")
    if len(text) > SUBJECT_MAX_LENGTH:
        raise _invalid(
            "subject", f"A subject can hold at most {SUBJECT_MAX_LENGTH} characters.", "too_long"
        )
    return text


def _validated_uploads(files: Sequence[IO[bytes]]) -> list[ValidatedUpload]:
    if len(files) > MAX_ATTACHMENTS:
        raise _invalid("attachments", f"At most {MAX_ATTACHMENTS} files per message.")
    return [validate_upload(uploaded) for uploaded in files]


# --- participants and posting --------------------------------------------------------------------


def thread_participants(thread: Thread) -> list[User]:
    """Everyone who takes part now: the practice's active members and, unless the referral is
    still a draft, the clinic's staff."""
    members = Q(
        organization_id=thread.practice_id,
        organization__kind=Organization.Kind.PRACTICE,
    )
    if permissions.clinic_takes_part(thread):
        members |= Q(
            organization_id=thread.clinic_id,
            organization__kind=Organization.Kind.CLINIC,
            role__in=list(CLINIC_ROLES),
        )
    # One query for both sides (a message notifies all of them).
    return list(
        User.objects.filter(
            is_active=True, memberships__in=Membership.objects.filter(members, is_active=True)
        )
        .distinct()
        .order_by("email")
    )


_PARTIES: Final = ("referral", "practice", "clinic")


def _lock_thread(thread: Thread) -> Thread:
    """The thread's row, locked. Its referral, practice and clinic are taken from ``thread`` when
    the caller read them with it (a selector, earlier in the same request), else read with it."""
    known = all(getattr(Thread, name).is_cached(thread) for name in _PARTIES)
    query = Thread.objects.select_for_update(of=("self",))
    if not known:
        query = query.select_related(*_PARTIES)
    locked = query.filter(pk=thread.pk).first()
    if locked is None:
        raise NotFound()
    if known:
        for name in _PARTIES:
            setattr(locked, name, getattr(thread, name))
    return locked


def _append(
    thread: Thread,
    *,
    kind: MessageKind,
    body: str,
    author: User | None = None,
    side: str = "",
    caused_by: User | None = None,
    notify_pending: bool = False,
) -> Message:
    """Add a message to a thread locked by the caller: the next sequence, the activity time."""
    thread.last_sequence += 1
    message = Message(
        thread=thread,
        sequence=thread.last_sequence,
        kind=kind,
        author=author,
        author_side=side,
        caused_by=caused_by,
        body=body,
        notify_pending=notify_pending,
    )
    message.save(force_insert=True)
    thread.last_message_at = message.created_at
    thread.save(update_fields=["last_sequence", "last_message_at", "updated_at"])
    return message


def _store_attachments(
    message: Message,
    actor: User,
    files: Sequence[IO[bytes]],
    validated: Sequence[ValidatedUpload],
) -> list[MessageAttachment]:
    stored: list[MessageAttachment] = []
    for uploaded, found in zip(files, validated, strict=True):
        attachment = MessageAttachment(
            message=message,
            content_type=found.content_type,
            original_name=found.original_name_sanitised,
            uploaded_by=actor,
        )
        # Bound to the attachment row that owns it; the registry row rolls back with it.
        saved = store_encrypted_file(
            uploaded, purpose=ATTACHMENT_PURPOSE, owner_id=str(attachment.public_id)
        )
        attachment.stored_name = saved.name
        attachment.size = saved.size
        attachment.sha256 = saved.sha256
        attachment.save(force_insert=True)
        stored.append(attachment)
    return stored


def _advance_read_position(
    user: User, thread: Thread, sequence: int, now: datetime, *, just_posted: bool = False
) -> bool:
    """Move the user's read position forward to ``sequence``; never backwards. True if moved.

    ``just_posted``: ``sequence`` is the user's own new message, the newest of the thread, so an
    existing position is behind it and one UPDATE usually does it."""
    if just_posted:
        moved = ThreadReadState.objects.filter(
            thread=thread, user=user, last_read_sequence__lt=sequence
        ).update(last_read_sequence=sequence, last_read_at=now)
        if moved:
            return True
    state, created = ThreadReadState.objects.get_or_create(
        thread=thread, user=user, defaults={"last_read_sequence": sequence, "last_read_at": now}
    )
    if created:
        return True
    moved = ThreadReadState.objects.filter(pk=state.pk, last_read_sequence__lt=sequence).update(
        last_read_sequence=sequence, last_read_at=now
    )
    return bool(moved)


def _notify_participants(thread: Thread, actor: User | None, event: str) -> None:
    notify(
        recipients=thread_participants(thread),
        event=event,
        reference=thread.reference,
        link=thread_portal_path(thread),
        actor=actor,
    )


# --- threads -------------------------------------------------------------------------------------


def _allocate_number(now: datetime) -> str:
    """The next "T-YYYY-NNNNN" of the year; the year's counter row is locked while allocating."""
    year = timezone.localtime(now).year
    ThreadNumberSequence.objects.get_or_create(year=year)
    sequence = ThreadNumberSequence.objects.select_for_update().get(year=year)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"T-{year}-{sequence.last_value:05d}"


def _one(organizations: Iterable[Organization], field: str, detail: str) -> Organization:
    found = list(organizations)
    if len(found) != 1:
        raise _invalid(field, detail)
    return found[0]


def _resolve_parties(
    access: Access, practice_id: uuid.UUID | None, clinic_id: uuid.UUID | None
) -> tuple[Organization, Organization]:
    """The practice and clinic of a new general thread: given by public id, or implied when the
    actor's memberships leave a single choice."""
    practices = Organization.objects.filter(kind=Organization.Kind.PRACTICE)
    clinics = Organization.objects.filter(kind=Organization.Kind.CLINIC)
    if practice_id is not None:
        practice = practices.filter(public_id=practice_id).first()
        if practice is None:
            raise _invalid("practice", "Unknown practice.")
    else:
        practice = _one(
            practices.filter(pk__in=access.practice_ids)[:2],
            "practice",
            "Required: choose the practice this conversation is with.",
        )
    if clinic_id is not None:
        clinic = clinics.filter(public_id=clinic_id).first()
        if clinic is None:
            raise _invalid("clinic", "Unknown clinic.")
    else:
        mine = clinics.filter(pk__in=access.clinic_ids)
        candidates = mine if access.clinic_ids else clinics
        clinic = _one(
            candidates.order_by("pk")[:2], "clinic", "Required: choose the receiving clinic."
        )
    return practice, clinic


def thread_create(
    *,
    actor: User,
    subject: str,
    body: str,
    practice_id: uuid.UUID | None = None,
    clinic_id: uuid.UUID | None = None,
    attachments: Sequence[IO[bytes]] = (),
) -> Thread:
    """Open a general thread between a practice and the clinic with its first message.

    A practice member opens it with the clinic (``clinic_id`` needed only if there are several
    clinics); clinic staff open it with a practice (``practice_id`` required). Practice members
    may only name their own practice, clinic staff only their own clinic (400 otherwise, the
    same answer as an unknown id).
    """
    clean_subject = validated_subject(subject)
    text = validated_body(body, allow_empty=bool(attachments))
    access = access_for(actor)
    practice, clinic = _resolve_parties(access, practice_id, clinic_id)
    if not permissions.can_open_general_thread(access, practice, clinic):
        # Clinic staff name a clinic that is not theirs, practice members a practice that is
        # not theirs: answered like an unknown id, so nothing is learnt about either.
        if access.clinic_ids:
            raise _invalid("clinic", "Unknown clinic.")
        raise _invalid("practice", "Unknown practice.")
    validated = _validated_uploads(attachments)
    with transaction.atomic():
        now = timezone.now()
        thread = Thread(
            kind=ThreadKind.GENERAL,
            number=_allocate_number(now),
            practice=practice,
            clinic=clinic,
            subject=clean_subject,
            created_by=actor,
            last_message_at=now,
        )
        thread.save(force_insert=True)
        audit_record(
            actor=actor,
            action="thread.created",
            object_type="thread",
            object_id=thread.public_id,
            details={"kind": ThreadKind.GENERAL, "number": thread.number},
        )
        side = permissions.author_side(access, thread)
        message = _append(thread, kind=MessageKind.USER, body=text, author=actor, side=side)
        stored = _store_attachments(message, actor, attachments, validated)
        _advance_read_position(actor, thread, message.sequence, now)
        _audit_sent(actor, message, thread, len(stored))
        _notify_participants(thread, actor, NEW_MESSAGE_EVENT)
    logger.info("thread.created", extra={"thread_id": str(thread.public_id)})
    return thread


def referral_thread_ensure(*, referral: Referral) -> Thread:
    """The referral's thread, created (by the system) if it has none yet."""
    existing = Thread.objects.filter(referral_id=referral.pk).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        thread = Thread(
            kind=ThreadKind.REFERRAL,
            referral=referral,
            practice_id=referral.practice_id,
            clinic_id=referral.clinic_id,
            subject=f"Referral {referral.number}",
            last_message_at=timezone.now(),
        )
        thread.save(force_insert=True)
        audit_record(
            actor=None,
            action="thread.created",
            object_type="thread",
            object_id=thread.public_id,
            details={"kind": ThreadKind.REFERRAL, "referral": str(referral.public_id)},
        )
    return thread


# --- messages ------------------------------------------------------------------------------------


def _audit_sent(actor: User, message: Message, thread: Thread, attachments: int) -> None:
    audit_record(
        actor=actor,
        action="message.sent",
        object_type="message",
        object_id=message.public_id,
        details={"thread": str(thread.public_id), "attachments": attachments},
    )


def _check_may_post(actor: User, thread: Thread) -> Thread:
    locked = _lock_thread(thread)
    if not permissions.can_post_in_thread(access_for(actor), locked):
        raise _Denied(NotFound(), "message.send", "thread", locked.public_id)
    return locked


def message_send(
    *,
    actor: User,
    thread: Thread,
    body: str,
    attachments: Sequence[IO[bytes]] = (),
) -> Message:
    """Post the actor's message (and up to five files) into a thread they take part in.

    The access check runs before any file is looked at. Sending also marks the thread read for
    the author up to their own message: they wrote it looking at the conversation. Every other
    participant is notified ("message.new" with the thread's reference and link, no content;
    immediate or digest e-mail is their own preference) by a worker once this commits.
    """
    text = validated_body(body, allow_empty=bool(attachments))
    if attachments:
        # Files are looked at only for someone who may post here.
        _run_denying(actor, lambda: _check_may_post(actor, thread))
    validated = _validated_uploads(attachments)

    def work() -> Message:
        locked = _check_may_post(actor, thread)
        side = permissions.author_side(access_for(actor), locked)
        message = _append(
            locked,
            kind=MessageKind.USER,
            body=text,
            author=actor,
            side=side,
            notify_pending=True,
        )
        stored = _store_attachments(message, actor, attachments, validated)
        setattr(message, PAGE_ATTACHMENTS, stored)  # its files are known: no query to show them
        _advance_read_position(
            actor, locked, message.sequence, message.created_at, just_posted=True
        )
        _audit_sent(actor, message, locked, len(stored))
        # The participants (thirty or more in a busy practice) are told by a worker after the
        # commit; the message row marks the work until it is done (see notify_pending).
        enqueue_on_commit(tasks.notify_participants, message.pk)
        return message

    message = _run_denying(actor, work)
    logger.info(
        "message.sent",
        extra={"thread_id": str(thread.public_id), "message_id": str(message.public_id)},
    )
    return message


def message_participants_notify(*, message_id: int) -> bool:
    """Tell everyone else in the message's thread about it ("message.new"), once.

    Runs on a worker after ``message_send`` commits, and from the re-drive. The message row is
    locked and its ``notify_pending`` cleared in the same transaction as the notifications, so a
    second run (a redelivered task, the re-drive racing the task) finds nothing to do. A message
    retracted in the meantime is not announced. True when this call did the work.
    """
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("author", "thread__referral", "thread__practice", "thread__clinic")
            .filter(pk=message_id, notify_pending=True)
            .first()
        )
        if message is None:
            return False
        if message.retracted_at is None:
            _notify_participants(message.thread, message.author, NEW_MESSAGE_EVENT)
        Message.objects.filter(pk=message.pk).update(notify_pending=False)
    return True


def messages_notify_pending(
    *, now: datetime | None = None, batch_size: int = NOTIFY_REDRIVE_BATCH
) -> list[int]:
    """Do the notifications whose task the broker lost (still pending a minute after the send);
    returns the message ids handled. Oldest first, a bounded batch per run."""
    now = now or timezone.now()
    pending = list(
        Message.objects.filter(notify_pending=True, created_at__lte=now - NOTIFY_REDRIVE_MIN_AGE)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    done = [pk for pk in pending if message_participants_notify(message_id=pk)]
    if done:
        logger.info("message.notify_redriven", extra={"messages": len(done)})
    return done


def _post_system(thread: Thread, text: str, caused_by: User | None) -> Message:
    locked = _lock_thread(thread)
    message = _append(locked, kind=MessageKind.SYSTEM, body=text, caused_by=caused_by)
    audit_record(
        actor=None,
        action="message.system_posted",
        object_type="message",
        object_id=message.public_id,
        details={"thread": str(locked.public_id)},
    )
    return message


def referral_system_message_post(
    *, referral: Referral, text: str, caused_by: User | None = None
) -> Message:
    """A system message in the referral's thread reporting ``caused_by``'s action."""
    body = validated_body(text)
    with transaction.atomic():
        thread = referral_thread_ensure(referral=referral)
        return _post_system(thread, body, caused_by)


def system_message_post(*, referral: Referral, text: str) -> Message:
    """Post a system message (no author, e.g. "Progress report 2 is ready") into the referral's
    thread, creating the thread if needed. Call it inside your own transaction. No notification
    is sent: the caller notifies about its own event."""
    return referral_system_message_post(referral=referral, text=text)


def _destroy_attachments(message: Message) -> int:
    destroyed = 0
    for attachment in list(message.attachments.all()):
        delete_encrypted_file(
            attachment.stored_name, purpose=ATTACHMENT_PURPOSE, owner_id=str(attachment.public_id)
        )
        attachment.delete()
        destroyed += 1
    return destroyed


def message_retract(*, actor: User, message: Message) -> Message:
    """The author retracts their message within 15 minutes of sending it: the body becomes NULL,
    the attachments and their files are destroyed, ``retracted_at``/``retracted_by`` stay as the
    marker and the audit records who and when."""

    def work() -> Message:
        locked = (
            Message.objects.select_for_update(of=("self",))
            .select_related("thread", "thread__referral")
            .filter(pk=message.pk)
            .first()
        )
        if locked is None:
            raise NotFound()
        access = access_for(actor)
        if not permissions.can_view_thread(access, locked.thread):
            raise _Denied(NotFound(), "message.retract", "message", locked.public_id)
        if locked.kind != MessageKind.USER or not permissions.is_author(access, locked):
            raise _Denied(
                Forbidden("Only the author can retract a message."),
                "message.retract",
                "message",
                locked.public_id,
            )
        if locked.retracted_at is not None:
            raise Conflict("The message is already retracted.", code="already_retracted")
        now = timezone.now()
        if not permissions.retraction_window_open(locked, now):
            raise Conflict(
                "A message can be retracted only within 15 minutes of sending it.",
                code="retraction_window_closed",
            )
        destroyed = _destroy_attachments(locked)
        locked.body = None
        locked.retracted_at = now
        locked.retracted_by = actor
        locked.save(update_fields=["body", "retracted_at", "retracted_by", "updated_at"])
        audit_record(
            actor=actor,
            action="message.retracted",
            object_type="message",
            object_id=locked.public_id,
            details={
                "thread": str(locked.thread.public_id),
                "attachments_destroyed": destroyed,
            },
        )
        return locked

    retracted = _run_denying(actor, work)
    logger.info("message.retracted", extra={"message_id": str(retracted.public_id)})
    return retracted


def thread_mark_read(*, actor: User, thread: Thread, through: Message | None = None) -> bool:
    """Mark the thread read for the actor up to ``through`` (a message of this thread) or up to
    its newest message. Idempotent: a position is never moved backwards, and an unchanged one
    writes nothing (no row, no audit). Returns whether the position moved."""
    if through is not None and through.thread_id != thread.pk:
        raise _invalid("through", "That message is not in this thread.")

    def work() -> bool:
        current = Thread.objects.select_related("referral").filter(pk=thread.pk).first()
        if current is None or not permissions.can_view_thread(access_for(actor), current):
            raise _Denied(NotFound(), "thread.mark_read", "thread", thread.public_id)
        target = through.sequence if through is not None else current.last_sequence
        moved = _advance_read_position(actor, current, target, timezone.now())
        if moved:
            audit_record(
                actor=actor,
                action="thread.read_marked",
                object_type="thread",
                object_id=current.public_id,
                details={"through": target},
            )
        return moved

    return _run_denying(actor, work)


# --- escalation ----------------------------------------------------------------------------------


def _read_by_clinic_staff() -> Exists:
    """Some active staff member of the thread's clinic has read up to (or past) the message."""
    return Exists(
        ThreadReadState.objects.filter(
            thread_id=OuterRef("thread_id"),
            last_read_sequence__gte=OuterRef("sequence"),
            user__is_active=True,
            user__memberships__organization_id=OuterRef("thread__clinic_id"),
            user__memberships__is_active=True,
            user__memberships__role__in=list(CLINIC_ROLES),
        )
    )


def messages_escalate_unread(*, now: datetime | None = None) -> int:
    """Tell the clinic's coordinators about practice messages that no one at the clinic has read
    for 24 hours: one notification per thread per run, each message escalated once (it is
    stamped ``escalated_at``). Idempotent. Returns how many messages were escalated."""
    moment = now or timezone.now()
    candidates = (
        Message.objects.filter(
            kind=MessageKind.USER,
            author_side=AuthorSide.PRACTICE,
            retracted_at__isnull=True,
            escalated_at__isnull=True,
            created_at__lte=moment - ESCALATE_AFTER,
        )
        .filter(
            Q(thread__referral__isnull=True)
            | Q(thread__referral__status__in=permissions.CLINIC_VISIBLE_REFERRAL_STATES)
        )
        .exclude(_read_by_clinic_staff())
    )
    thread_ids = sorted(set(candidates.values_list("thread_id", flat=True)[:ESCALATION_BATCH]))
    escalated = 0
    for thread_id in thread_ids:
        with transaction.atomic():
            thread = _lock_thread(Thread(pk=thread_id))
            message_ids = list(candidates.filter(thread_id=thread_id).values_list("pk", flat=True))
            if not message_ids:
                continue
            Message.objects.filter(pk__in=message_ids, escalated_at__isnull=True).update(
                escalated_at=moment, updated_at=moment
            )
            coordinators = clinic_staff_for_clinic(thread.clinic, roles=[Role.COORDINATOR])
            notify(
                recipients=coordinators,
                event=UNANSWERED_EVENT,
                reference=thread.reference,
                link=thread_portal_path(thread),
            )
            audit_record(
                actor=None,
                action="thread.escalated",
                object_type="thread",
                object_id=thread.public_id,
                details={"messages": len(message_ids)},
            )
            escalated += len(message_ids)
    if escalated:
        logger.info("messaging.escalated", extra={"count": escalated})
    return escalated


# --- retention -----------------------------------------------------------------------------------


def retention_policy_set(
    *,
    actor: User,
    clinic: Organization,
    message_retention_days: int | None,
    archive_grace_days: int = 30,
) -> RetentionPolicy:
    """A clinic admin sets how long the clinic's messages are kept (None: forever) and how long
    archived messages wait before they are purged."""
    if clinic.kind != Organization.Kind.CLINIC or not role_in(actor, clinic, [Role.CLINIC_ADMIN]):
        raise Forbidden("Only an admin of the clinic can set its message retention.")
    if message_retention_days is not None and (
        isinstance(message_retention_days, bool)
        or not isinstance(message_retention_days, int)
        or not 1 <= message_retention_days <= 36_500
    ):
        raise _invalid("message_retention_days", "A whole number of days from 1 to 36500.")
    if (
        isinstance(archive_grace_days, bool)
        or not isinstance(archive_grace_days, int)
        or not 0 <= archive_grace_days <= 3_650
    ):
        raise _invalid("archive_grace_days", "A whole number of days from 0 to 3650.")
    with transaction.atomic():
        policy, _created = RetentionPolicy.objects.select_for_update().get_or_create(clinic=clinic)
        policy.message_retention_days = message_retention_days
        policy.archive_grace_days = archive_grace_days
        policy.save(update_fields=["message_retention_days", "archive_grace_days", "updated_at"])
        audit_record(
            actor=actor,
            action="messaging.retention_set",
            object_type="clinic",
            object_id=clinic.public_id,
            details={
                "message_retention_days": message_retention_days,
                "archive_grace_days": archive_grace_days,
            },
        )
    return policy


def _lock_unless_held(thread_id: int) -> Thread | None:
    """Lock the thread and its referral; None when the referral is under legal hold.

    ``referral_set_legal_hold`` locks the referral row too, so a hold placed while a batch runs
    waits for the batch or stops it: the two never interleave.
    """
    thread = _lock_thread(Thread(pk=thread_id))
    if thread.referral_id is not None:
        held = (
            Referral.objects.select_for_update()
            .filter(pk=thread.referral_id)
            .values_list("legal_hold", flat=True)
            .first()
        )
        if held:
            return None
    return thread


def _not_held() -> Q:
    return Q(thread__referral__isnull=True) | Q(thread__referral__legal_hold=False)


def _archive_batch(thread: Thread, cutoff: datetime, batch_size: int) -> int:
    """Move up to ``batch_size`` expired messages of a locked thread to the archive."""
    messages = list(
        Message.objects.select_for_update(of=("self",))
        .filter(thread_id=thread.pk, created_at__lt=cutoff)
        .prefetch_related("attachments")
        .order_by("sequence")[:batch_size]
    )
    if not messages:
        return 0
    archived = []
    for message in messages:
        attachments = [
            {
                "public_id": str(attachment.public_id),
                "stored_name": attachment.stored_name,
                "size": attachment.size,
                "sha256": attachment.sha256,
                "content_type": attachment.content_type,
                "original_name": attachment.original_name,
            }
            for attachment in message.attachments.all()
        ]
        archived.append(
            ArchivedMessage(
                public_id=message.public_id,
                thread_id=thread.pk,
                sequence=message.sequence,
                kind=message.kind,
                author_id=message.author_id,
                author_side=message.author_side,
                caused_by_id=message.caused_by_id,
                # Decrypted here and encrypted again for the archive row (its own binding).
                body=message.body,
                attachments=attachments,
                message_created_at=message.created_at,
                retracted_at=message.retracted_at,
                retracted_by_id=message.retracted_by_id,
            )
        )
    ArchivedMessage.objects.bulk_create(archived)
    ids = [message.pk for message in messages]
    # The files stay (the archive row names them) until the purge.
    MessageAttachment.objects.filter(message_id__in=ids).delete()
    Message.objects.filter(pk__in=ids).delete()
    audit_record(
        actor=None,
        action="messaging.messages_archived",
        object_type="thread",
        object_id=thread.public_id,
        details={"messages": len(ids)},
    )
    return len(ids)


def messages_archive_expired(
    *, now: datetime | None = None, batch_size: int = RETENTION_BATCH
) -> int:
    """Move every message older than its clinic's retention to the archive, in transactional
    batches (each batch: one thread, at most ``batch_size`` messages, one transaction). Threads
    of referrals under legal hold are skipped. Idempotent and resumable. Returns the count."""
    moment = now or timezone.now()
    moved = 0
    policies = RetentionPolicy.objects.filter(message_retention_days__isnull=False)
    for policy in policies:
        cutoff = moment - timedelta(days=policy.message_retention_days or 0)
        thread_ids = (
            Message.objects.filter(_not_held(), thread__clinic_id=policy.clinic_id)
            .filter(created_at__lt=cutoff)
            .values_list("thread_id", flat=True)
            .distinct()
            .order_by("thread_id")
        )
        for thread_id in list(thread_ids):
            while True:
                with transaction.atomic():
                    thread = _lock_unless_held(thread_id)
                    count = _archive_batch(thread, cutoff, batch_size) if thread else 0
                moved += count
                if count < batch_size:
                    break
    if moved:
        logger.info("messaging.archived", extra={"count": moved})
    return moved


def _purge_batch(thread: Thread, cutoff: datetime, batch_size: int) -> int:
    rows = list(
        ArchivedMessage.objects.select_for_update(of=("self",))
        .filter(thread_id=thread.pk, created_at__lt=cutoff)
        .order_by("sequence")[:batch_size]
    )
    if not rows:
        return 0
    for row in rows:
        for attachment in row.attachments:
            delete_encrypted_file(
                attachment["stored_name"],
                purpose=ATTACHMENT_PURPOSE,
                owner_id=attachment["public_id"],
            )
    ArchivedMessage.objects.filter(pk__in=[row.pk for row in rows]).delete()
    audit_record(
        actor=None,
        action="messaging.messages_purged",
        object_type="thread",
        object_id=thread.public_id,
        details={"messages": len(rows)},
    )
    return len(rows)


def archived_messages_purge(
    *, now: datetime | None = None, batch_size: int = RETENTION_BATCH
) -> int:
    """Delete archived messages (and their files) once the clinic's grace period has passed
    since they were archived; legal hold keeps them. Batched like the archiving."""
    moment = now or timezone.now()
    purged = 0
    for policy in RetentionPolicy.objects.all():
        cutoff = moment - timedelta(days=policy.archive_grace_days)
        thread_ids = (
            ArchivedMessage.objects.filter(_not_held(), thread__clinic_id=policy.clinic_id)
            .filter(created_at__lt=cutoff)
            .values_list("thread_id", flat=True)
            .distinct()
            .order_by("thread_id")
        )
        for thread_id in list(thread_ids):
            while True:
                with transaction.atomic():
                    thread = _lock_unless_held(thread_id)
                    count = _purge_batch(thread, cutoff, batch_size) if thread else 0
                purged += count
                if count < batch_size:
                    break
    if purged:
        logger.info("messaging.purged", extra={"count": purged})
    return purged
