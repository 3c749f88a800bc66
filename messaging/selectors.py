"""Every read of messaging data for a user, scoped to the threads the user takes part in.

- ``thread_list_for_user``: visible threads, newest activity first, each annotated with its exact
  ``unread_count`` in the same query.
- ``thread_unread_total_for_user``: the header badge, one query.
- ``thread_get_for_user``: one thread; the same ``NotFound`` for missing and not-yours, and an
  existing thread asked for by an outsider is audited as denied.
- ``message_list_for_thread``: a page of messages (oldest first within the page), with the
  cursor and ``since`` rules below. It audits the PHI read before returning any body.

Unread: a message is unread for a user when its sequence is above the user's read position in
the thread, someone else wrote it (for a system message: it does not report the user's own
action) and it is not retracted (there is nothing left to read).

``since`` (polling): either a message id of the thread (the messages after that one, by
sequence) or an ISO 8601 timestamp with a time zone (the messages created strictly after it;
``Z`` and ``+00:00`` both work; a ``+`` sent unencoded in a query string arrives as a space and
is read back as ``+``). Anything else, a naive timestamp, or a message id of another thread is a
400 (``invalid_since``).

Cursors are opaque strings: ``next`` walks to newer messages, ``previous`` to older ones.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from django.db.models import (
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messaging.models import (
    PAGE_ATTACHMENTS,
    Message,
    MessageAttachment,
    RetentionPolicy,
    Thread,
    ThreadReadState,
)
from messaging.permissions import CLINIC_VISIBLE_REFERRAL_STATES
from portal.accounts.models import Organization, Role, User
from portal.accounts.permissions import AnyUser
from portal.api.errors import NotFound, ServiceError
from portal.audit.services import audit_denied, audit_phi_read
from portal.core.models import field_names
from portal.crypto.storage import EncryptedFileStream, open_encrypted_file
from referrals.permissions import Access, access_for

ATTACHMENT_PURPOSE: Final = "message-attachment"
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 100


def _visible_filter(access: Access) -> Q:
    """Threads of the user's practices; threads of the user's clinics, except the threads of
    referrals the clinic cannot see yet (drafts)."""
    clinic_side = Q(clinic_id__in=access.clinic_ids) & (
        Q(referral__isnull=True) | Q(referral__status__in=CLINIC_VISIBLE_REFERRAL_STATES)
    )
    return Q(practice_id__in=access.practice_ids) | clinic_side


def _as_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _actor(user: AnyUser) -> User | None:
    return user if isinstance(user, User) else None


def unread_messages(user_id: int) -> QuerySet[Message]:
    """Messages unread for the user, except for the read position (the caller adds it)."""
    return (
        Message.objects.filter(retracted_at__isnull=True)
        .exclude(author_id=user_id)
        .exclude(caused_by_id=user_id)
    )


def _with_unread_count(threads: QuerySet[Thread], user_id: int) -> QuerySet[Thread]:
    """Annotate ``read_position`` and ``unread_count``: two correlated subqueries, so one query
    for any number of threads, each counting only the messages after the read position (a range
    on the (thread, sequence) index, never the whole history)."""
    position = ThreadReadState.objects.filter(thread_id=OuterRef("pk"), user_id=user_id).values(
        "last_read_sequence"
    )[:1]
    unread = (
        unread_messages(user_id)
        .filter(thread_id=OuterRef("pk"), sequence__gt=OuterRef("read_position"))
        .order_by()
        .annotate(count=Func(F("pk"), function="COUNT", output_field=IntegerField()))
        .values("count")
    )
    return threads.annotate(
        read_position=Coalesce(Subquery(position), Value(0)),
        unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
    )


def _visible_threads(access: Access) -> QuerySet[Thread]:
    if access.user_id is None:
        return Thread.objects.none()
    return Thread.objects.filter(_visible_filter(access))


def thread_list_for_user(*, user: AnyUser) -> QuerySet[Thread]:
    """The user's threads, newest activity first, with ``unread_count`` (one query)."""
    access = access_for(user)
    if access.user_id is None:
        return Thread.objects.none()
    return (
        _with_unread_count(_visible_threads(access), access.user_id)
        .select_related("referral", "practice", "clinic")
        .order_by("-last_message_at", "-id")
    )


def thread_unread_total_for_user(*, user: AnyUser) -> int:
    """Unread messages over all of the user's threads (the header badge): one query after the
    membership snapshot."""
    access = access_for(user)
    if access.user_id is None:
        return 0
    threads = _with_unread_count(_visible_threads(access), access.user_id)
    total = threads.aggregate(total=Sum("unread_count"))["total"]
    return int(total or 0)


def threads_reveal(*, user: AnyUser, threads: Sequence[Thread]) -> Sequence[Thread]:
    """Audit a list of threads about to be shown: subjects are encrypted because people can
    write PHI into them. Nothing is recorded for an empty list."""
    actor = _actor(user)
    if threads and actor is not None:
        audit_phi_read(
            actor=actor,
            object_type="inbox",
            object_id=actor.public_id,
            details={"threads": len(threads)},
        )
    return threads


#: What messaging reads of a thread's referral. Its other columns (the clinical content, JSON
#: among them) are not read with the thread; code that needs one loads it on first use.
THREAD_REFERRAL_FIELDS: Final = ("public_id", "number", "status", "practice_id", "clinic_id")


_THREAD_WITH_PARTIES_FIELDS: Final = (
    *field_names(Thread),
    *(f"referral__{name}" for name in THREAD_REFERRAL_FIELDS),
    *field_names(Organization, "practice__"),
    *field_names(Organization, "clinic__"),
)


def threads_with_parties() -> QuerySet[Thread]:
    """Threads joined to their practice, clinic and the referral fields messaging reads."""
    return Thread.objects.select_related("referral", "practice", "clinic").only(
        *_THREAD_WITH_PARTIES_FIELDS
    )


def thread_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Thread:
    """One thread the user takes part in; ``NotFound`` otherwise (missing or not theirs)."""
    access = access_for(user)
    parsed = _as_uuid(public_id)
    thread = None
    if parsed is not None and access.user_id is not None:
        thread = threads_with_parties().filter(_visible_filter(access), public_id=parsed).first()
    if thread is None:
        if parsed is not None and Thread.objects.filter(public_id=parsed).exists():
            audit_denied(
                actor=_actor(user), action="thread.read", object_type="thread", object_id=parsed
            )
        raise NotFound()
    return thread


def thread_with_unread_for_user(*, user: AnyUser, thread: Thread) -> Thread:
    """``thread`` (from a selector for this user) re-read with its ``unread_count``."""
    found = thread_list_for_user(user=user).filter(pk=thread.pk).first()
    if found is None:
        raise NotFound()
    return found


def referral_thread_for_user(*, user: AnyUser, referral_id: uuid.UUID | str) -> Thread:
    """The thread of a referral the user may see; ``NotFound`` for anything else."""
    parsed = _as_uuid(referral_id)
    thread_id = None
    if parsed is not None:
        thread_id = (
            Thread.objects.filter(referral__public_id=parsed)
            .values_list("public_id", flat=True)
            .first()
        )
    if thread_id is None:
        raise NotFound()
    return thread_get_for_user(user=user, public_id=thread_id)


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessagePage:
    """Messages oldest first; ``next_cursor`` leads to newer ones, ``previous_cursor`` to older."""

    messages: Sequence[Message]
    next_cursor: str | None
    previous_cursor: str | None


class InvalidQuery(ServiceError):
    default_code = "invalid"


def _encode_cursor(direction: str, sequence: int) -> str:
    raw = f"{direction}:{sequence}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        direction, _, number = base64.urlsafe_b64decode(padded).decode("ascii").partition(":")
        sequence = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery("The cursor is not valid.", code="invalid_cursor") from None
    if direction not in {"after", "before"} or sequence < 0 or len(cursor) > 64:
        raise InvalidQuery("The cursor is not valid.", code="invalid_cursor")
    return direction, sequence


def _since_filter(thread: Thread, since: str) -> Q:
    parsed_id = _as_uuid(since)
    if parsed_id is not None:
        sequence = (
            Message.objects.filter(thread_id=thread.pk, public_id=parsed_id)
            .values_list("sequence", flat=True)
            .first()
        )
        if sequence is None:
            raise InvalidQuery("since names no message of this thread.", code="invalid_since")
        return Q(sequence__gt=sequence)
    moment: datetime | None
    try:
        moment = parse_datetime(since.strip().replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None or timezone.is_naive(moment):
        raise InvalidQuery(
            "since must be a message id or an ISO 8601 timestamp with a time zone.",
            code="invalid_since",
        )
    return Q(created_at__gt=moment)


#: What a page of messages shows: the message's own columns and its author's name (not the
#: author's whole account row: timestamps and hashes are many values to parse per message).
_PAGE_FIELDS: Final = (
    *field_names(Message),
    "author__public_id",
    "author__full_name",
    "author__email",
)


def _attach_files(page: Sequence[Message]) -> None:
    """Give each message of the page its files (``Message.attachment_list``): one query, and
    none when no message of the page has any (the page query says which have)."""
    with_files = [message.pk for message in page if getattr(message, "has_attachments", True)]
    files: dict[int, list[MessageAttachment]] = {pk: [] for pk in with_files}
    if with_files:
        for attachment in MessageAttachment.objects.filter(message_id__in=with_files):
            files[attachment.message_id].append(attachment)
    for message in page:
        setattr(message, PAGE_ATTACHMENTS, files.get(message.pk, []))


def message_list_for_thread(
    *,
    user: AnyUser,
    thread: Thread,
    since: str | None = None,
    cursor: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    newest: bool = False,
) -> MessagePage:
    """A page of the thread's messages (``thread`` from a selector for this user).

    Without a cursor the page is the oldest messages (the API), or the newest ones when
    ``newest`` (the portal's thread page). ``since`` narrows to messages after it (see the module
    docstring). Page sizes run from 1 to 100. When the page holds any message body the PHI read is
    audited (object "thread") before the page is returned; an empty poll records nothing.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"page_size must be from 1 to {MAX_PAGE_SIZE}.", code="invalid")
    messages = Message.objects.filter(thread_id=thread.pk)
    if since:
        messages = messages.filter(_since_filter(thread, since))
    direction, position = _decode_cursor(cursor) if cursor else ("", 0)
    messages = (
        messages.select_related("author")
        .only(*_PAGE_FIELDS)
        .annotate(
            has_attachments=Exists(MessageAttachment.objects.filter(message_id=OuterRef("pk")))
        )
    )
    if direction == "before" or (not direction and newest):
        if direction:
            messages = messages.filter(sequence__lt=position)
        rows = list(messages.order_by("-sequence")[: page_size + 1])
        has_older = len(rows) > page_size
        page = list(reversed(rows[:page_size]))
        next_cursor = _encode_cursor("after", page[-1].sequence) if page and direction else None
        previous_cursor = _encode_cursor("before", page[0].sequence) if has_older else None
    else:
        if direction:
            messages = messages.filter(sequence__gt=position)
        rows = list(messages.order_by("sequence")[: page_size + 1])
        has_newer = len(rows) > page_size
        page = rows[:page_size]
        next_cursor = _encode_cursor("after", page[-1].sequence) if has_newer else None
        previous_cursor = _encode_cursor("before", page[0].sequence) if page and direction else None
    _attach_files(page)
    actor = _actor(user)
    if actor is not None and any(message.retracted_at is None for message in page):
        audit_phi_read(
            actor=actor,
            object_type="thread",
            object_id=thread.public_id,
            details={"messages": len(page)},
        )
    return MessagePage(messages=page, next_cursor=next_cursor, previous_cursor=previous_cursor)


def message_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> Message:
    """One message in a thread the user takes part in; ``NotFound`` otherwise (audited for an
    existing message that is not theirs). No body is read here."""
    access = access_for(user)
    parsed = _as_uuid(public_id)
    message = None
    if parsed is not None and access.user_id is not None:
        visible = _visible_threads(access)
        message = (
            Message.objects.filter(public_id=parsed, thread__in=visible)
            .select_related("thread", "thread__referral", "author")
            .first()
        )
    if message is None:
        if parsed is not None and Message.objects.filter(public_id=parsed).exists():
            audit_denied(
                actor=_actor(user), action="message.read", object_type="message", object_id=parsed
            )
        raise NotFound()
    return message


def message_attachment_get_for_user(
    *, user: AnyUser, public_id: uuid.UUID | str
) -> MessageAttachment:
    access = access_for(user)
    parsed = _as_uuid(public_id)
    attachment = None
    if parsed is not None and access.user_id is not None:
        visible = _visible_threads(access)
        attachment = (
            MessageAttachment.objects.filter(
                public_id=parsed,
                message__thread__in=visible,
                message__retracted_at__isnull=True,
            )
            .select_related("message", "message__thread")
            .first()
        )
    if attachment is None:
        if parsed is not None and MessageAttachment.objects.filter(public_id=parsed).exists():
            audit_denied(
                actor=_actor(user),
                action="message_attachment.read",
                object_type="message_attachment",
                object_id=parsed,
            )
        raise NotFound()
    return attachment


def message_attachment_open_for_user(
    *, user: AnyUser, public_id: uuid.UUID | str
) -> tuple[MessageAttachment, EncryptedFileStream]:
    """The attachment and its decrypted bytes (verified against the stored SHA-256, failing
    closed); the download is audited before any byte is read."""
    attachment = message_attachment_get_for_user(user=user, public_id=public_id)
    actor = _actor(user)
    if actor is None:
        raise NotFound()
    audit_phi_read(
        actor=actor,
        object_type="message_attachment",
        object_id=attachment.public_id,
        details={"thread": str(attachment.message.thread.public_id), "view": "download"},
    )
    chunks = open_encrypted_file(
        attachment.stored_name,
        purpose=ATTACHMENT_PURPOSE,
        owner_id=str(attachment.public_id),
        expected_sha256=attachment.sha256,
    )
    return attachment, chunks


# --- retention -----------------------------------------------------------------------------------


def retention_clinics_for_user(*, user: AnyUser) -> list[Organization]:
    """The clinics whose message retention the user administers (clinic admins), by name."""
    if not isinstance(user, User) or not user.is_active:
        return []
    return list(
        Organization.objects.filter(
            kind=Organization.Kind.CLINIC,
            memberships__user_id=user.pk,
            memberships__is_active=True,
            memberships__role=Role.CLINIC_ADMIN,
        ).order_by("name")
    )


def retention_policy_for_clinic(*, clinic: Organization) -> RetentionPolicy:
    """The clinic's policy, or an unsaved default (keep messages) when it has none."""
    found = RetentionPolicy.objects.filter(clinic=clinic).first()
    return found if found is not None else RetentionPolicy(clinic=clinic)
