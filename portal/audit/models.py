"""The audit trail: append-only events, the seals that hash-chain them, and the sealer's state.

Why the chain lives in a separate ``AuditSeal`` table instead of nullable columns on the event:
requests only ever INSERT events, the sealer only ever INSERTs seals, and so both tables refuse
every UPDATE and DELETE without exception (in Python here, and by trigger on PostgreSQL, see
migration 0002). A trigger that let "NULL -> value once" through on chain columns would be a
hole an attacker with SQL access could aim at; a separate insert-only table has none.

Only ``AuditChainHead`` (one row) and ``AuditGap`` are sealer bookkeeping: they hold no event
content and the verifier does not trust them beyond the HMAC carried on the head.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTransform
from django.utils import timezone


class AppendOnlyError(Exception):
    """An audit row was about to be changed or deleted; the trail only grows."""


class AppendOnlyQuerySet(models.QuerySet[Any]):
    """Refuses bulk changes, so no ORM path can rewrite or remove audit rows."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: update refused.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: delete refused.")

    def _raw_delete(self, using: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: delete refused.")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: update refused.")


class AppendOnlyModel(models.Model):
    """Rows are inserted once and never saved again or deleted.

    This guard is an invariant of the table, not domain logic, which is why it sits in save().
    """

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only: update refused.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only: delete refused.")


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"


class AuditEvent(AppendOnlyModel):
    """Who did what to which object, when, from where, and whether it was allowed.

    ``sequence`` (the identity primary key) gives the order the sealer links events in. No
    column holds PHI: objects are named by type and public id, ``details`` by small non-PHI
    values (services.py validates them).
    """

    sequence = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for the system (tasks, commands) and for anonymous requests.",
    )
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects: ClassVar[models.Manager[AuditEvent]] = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=["allowed", "denied"]),
                name="audit_event_outcome_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["actor", "-sequence"], name="audit_event_actor_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_event_object_idx"),
            # "Who accessed patient X / referral Y": services put the public ids in details.
            # The expressions match the selectors' details__<key> lookups (json -> 'key').
            models.Index(
                KeyTransform("referral", "details"),
                condition=models.Q(details__has_key="referral"),
                name="audit_event_referral_idx",
            ),
            models.Index(
                KeyTransform("patient", "details"),
                condition=models.Q(details__has_key="patient"),
                name="audit_event_patient_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.outcome}"


class AuditSeal(AppendOnlyModel):
    """One link of the hash chain: the event at chain ``position`` and its HMAC.

    ``chain_hash`` = HMAC-SHA256(key, canonical(position, previous_sequence, previous_hash,
    event content)); see chain.py. ``previous_sequence`` names the event linked before this one,
    so a removed event can be named by the verifier even when its seal went with it.
    """

    position = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(
        AuditEvent, on_delete=models.PROTECT, related_name="seal", db_column="sequence"
    )
    previous_sequence = models.BigIntegerField(null=True, blank=True)
    previous_hash = models.CharField(max_length=64, blank=True)
    chain_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    objects: ClassVar[models.Manager[AuditSeal]] = AppendOnlyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"seal {self.position} -> event {self.event_id}"


class AuditGap(AppendOnlyModel):
    """Sequence numbers the sealer stepped over as rolled back (``first``..``last`` inclusive).

    Kept so that an event committing after its gap was accepted (a transaction that ran longer
    than the grace period) is found and linked at the end of the chain instead of being lost.
    """

    first_sequence = models.BigIntegerField(primary_key=True)
    last_sequence = models.BigIntegerField()
    accepted_at = models.DateTimeField(db_index=True)

    objects: ClassVar[models.Manager[AuditGap]] = AppendOnlyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"gap {self.first_sequence}-{self.last_sequence}"


class AuditChainHead(models.Model):
    """The sealer's single bookkeeping row (id 1), updated by the sealer only, under its lock.

    ``through_sequence``: every sequence up to it is sealed or an accepted gap.
    ``position``/``last_sequence``/``chain_hash``: the chain's last link; ``head_mac`` is an
    HMAC over them, so the verifier notices events cut off the end of the chain.
    ``observations``: recent [highest visible sequence, ISO time] pairs, which tell the sealer
    how long a missing sequence number has at least been outstanding (see sealing.py).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    through_sequence = models.BigIntegerField(default=0)
    position = models.BigIntegerField(default=0)
    last_sequence = models.BigIntegerField(null=True, blank=True)
    chain_hash = models.CharField(max_length=64, blank=True)
    head_mac = models.CharField(max_length=64, blank=True)
    observations = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_singleton"),
        ]

    def __str__(self) -> str:
        return f"chain head at position {self.position}"
