"""Threads, encrypted messages and attachments, read positions, retention and its archive.

Participants are never stored: they are derived on every request from the thread's practice and
clinic (``messaging.permissions``), so a removed membership removes the participant at once.

Every message of a thread carries a ``sequence`` (1, 2, 3, ... allocated under a lock on the
thread row). Read positions, unread counts, ``since`` polling and cursors all compare sequences,
which are exact where timestamps can tie.

Messages are immutable: services only ever insert them, except for the one-time retraction (body
set to NULL, attachments destroyed, ``retracted_at``/``retracted_by`` kept as the marker) and
the escalation stamp. Retention moves expired messages to ``ArchivedMessage`` and later purges
them; a legal hold on the referral stops both.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from portal.accounts.models import Organization
from portal.core.models import BaseModel
from portal.crypto.fields import EncryptedJSONField, EncryptedTextField

#: The longest message body, in characters (validated before encryption).
BODY_MAX_LENGTH = 20_000
SUBJECT_MAX_LENGTH = 200


class ThreadKind(models.TextChoices):
    REFERRAL = "referral", "Referral"
    GENERAL = "general", "General"


class MessageKind(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System"


class AuthorSide(models.TextChoices):
    """Which side of the care team wrote a message (empty for system messages)."""

    PRACTICE = "practice", "Practice"
    CLINIC = "clinic", "Clinic"


class Thread(BaseModel):
    """A conversation between a practice and the clinic: a referral's, or a general one."""

    kind = models.CharField(max_length=16, choices=ThreadKind.choices)
    referral = models.OneToOneField(
        "referrals.Referral",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="thread",
    )
    # General threads get their own reference ("T-2026-00007") for notifications; a referral's
    # thread uses the referral number.
    number = models.CharField(max_length=16, unique=True, null=True, blank=True, editable=False)
    practice = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="message_threads"
    )
    clinic = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="clinic_message_threads"
    )
    # Encrypted: a subject typed by a person can name a patient.
    subject = EncryptedTextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for referral threads (created by the system with the referral).",
    )
    last_message_at = models.DateTimeField(db_index=True)
    # The sequence of the thread's newest message (0 before the first one).
    last_sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["practice", "-last_message_at"], name="thread_practice_activity"),
            models.Index(fields=["clinic", "-last_message_at"], name="thread_clinic_activity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=ThreadKind.values), name="thread_kind_valid"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="referral", referral__isnull=False, number__isnull=True)
                    | models.Q(kind="general", referral__isnull=True, number__isnull=False)
                ),
                name="thread_referral_or_number",
            ),
        ]

    def __str__(self) -> str:
        return f"thread {self.public_id}"

    @property
    def reference(self) -> str:
        """The number notifications name: the referral's, or the general thread's own."""
        if self.referral is not None:
            return self.referral.number
        return self.number or ""


class ThreadNumberSequence(models.Model):
    """The last general-thread number handed out in a year; its row is locked while allocating."""

    year = models.PositiveSmallIntegerField(unique=True)
    last_value = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_value}"


class Message(BaseModel):
    """One message. ``body`` is NULL once retracted; system messages have no author."""

    thread = models.ForeignKey(Thread, on_delete=models.PROTECT, related_name="messages")
    sequence = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=16, choices=MessageKind.choices, default=MessageKind.USER)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    author_side = models.CharField(max_length=16, choices=AuthorSide.choices, blank=True)
    # For a system message, the user whose action it reports ("Accepted by ..."): it is not
    # unread for them, just as their own messages are not.
    caused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    body = EncryptedTextField(null=True, blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Set when the clinic's coordinators were told that nobody at the clinic had read it.
    escalated_at = models.DateTimeField(null=True, blank=True)
    # True from the sending transaction until a worker has told the thread's other participants
    # (messaging.services.message_participants_notify); the periodic re-drive finds rows left
    # True when the broker lost the task.
    notify_pending = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["thread_id", "sequence"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="message_notify_pending",
                condition=models.Q(notify_pending=True),
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["thread", "sequence"], name="message_thread_sequence"),
            models.CheckConstraint(
                condition=models.Q(kind__in=MessageKind.values), name="message_kind_valid"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="user", author__isnull=False)
                    | models.Q(kind="system", author__isnull=True)
                ),
                name="message_author_matches_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(retracted_at__isnull=True) | models.Q(body__isnull=True),
                name="message_retracted_has_no_body",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.public_id}"

    @property
    def is_retracted(self) -> bool:
        return self.retracted_at is not None

    @property
    def attachment_list(self) -> list[MessageAttachment]:
        """The message's files: as read for a page of messages (``PAGE_ATTACHMENTS``, a plain
        list set by ``messaging.selectors``), else read now."""
        prefetched = self.__dict__.get(PAGE_ATTACHMENTS)
        if prefetched is not None:
            return list(prefetched)
        return list(self.attachments.all())


#: The attribute a page of messages gets its files in.
PAGE_ATTACHMENTS = "page_attachments"


class MessageAttachment(BaseModel):
    """A file sent with a message, stored encrypted (same rules as referral attachments)."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="attachments")
    stored_name = models.CharField(max_length=255, unique=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100)
    original_name = EncryptedTextField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"message attachment {self.public_id}"


class ThreadReadState(models.Model):
    """How far a user has read a thread: every message up to ``last_read_sequence``."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="read_states")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_read_sequence = models.PositiveBigIntegerField(default=0)
    last_read_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["thread", "user"], name="thread_read_state_unique"),
        ]

    def __str__(self) -> str:
        return f"read state of {self.user_id} in {self.thread_id}"


class RetentionPolicy(BaseModel):
    """A clinic's message retention. Without a row (or without days) messages are kept."""

    clinic = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="message_retention",
        limit_choices_to={"kind": Organization.Kind.CLINIC},
    )
    message_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(36_500)],
        help_text="Messages older than this move to the archive; empty keeps them forever.",
    )
    archive_grace_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(0), MaxValueValidator(3_650)],
        help_text="Archived messages are purged this many days after they were archived.",
    )

    class Meta:
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"message retention of {self.clinic}"


class ArchivedMessage(BaseModel):
    """A message past its retention, kept for the grace period and then purged.

    ``public_id`` is the original message's. The body is re-encrypted for this table (the
    associated data names the model), and the attachments' metadata, original names included,
    is kept encrypted in ``attachments`` until the purge deletes their files.
    ``created_at`` is when the message was archived.
    """

    thread = models.ForeignKey(Thread, on_delete=models.PROTECT, related_name="archived_messages")
    sequence = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=16, choices=MessageKind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    author_side = models.CharField(max_length=16, choices=AuthorSide.choices, blank=True)
    caused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    body = EncryptedTextField(null=True, blank=True)
    # [{"public_id", "stored_name", "size", "sha256", "content_type", "original_name"}]
    attachments = EncryptedJSONField(default=list)
    message_created_at = models.DateTimeField()
    retracted_at = models.DateTimeField(null=True, blank=True)
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "sequence"], name="archived_message_thread_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"archived message {self.public_id}"
