"""Writing audit events.

* ``audit_record``: the one function services call, inside their transaction, for every change.
  It inserts in the caller's transaction; if the insert fails the exception propagates and the
  change fails with it.
* ``audit_phi_read``: selectors returning clinical detail call it before returning data; if it
  raises, no PHI goes out.
* ``audit_denied`` and ``security_event_record``: events that must survive the rollback of the
  surrounding transaction (a denial usually aborts it). See context.py for how.

Request id and client IP come from the audit scope (AuditContextMiddleware); there is no request
argument. Details are small and never PHI: only short strings, integers, booleans and null.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from portal.audit.context import DeferredEvent, current_context
from portal.audit.models import AuditEvent, Outcome

if TYPE_CHECKING:
    # Only for annotations: portal.crypto imports this module, and accounts models may use
    # encrypted fields, so importing accounts here at run time would be circular.
    from portal.accounts.models import User

logger = logging.getLogger("portal.security")

DetailValue = str | int | bool | None
Details = Mapping[str, DetailValue]

ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
OBJECT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
DETAIL_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_ACTION_LENGTH = 64
MAX_OBJECT_ID_LENGTH = 64
MAX_DETAIL_KEYS = 16
MAX_DETAIL_STRING_LENGTH = 200


class InvalidAuditEvent(ValueError):
    """A caller passed an event the trail cannot hold (a programming error, never user input)."""


def _validated_action(action: str) -> str:
    if len(action) > MAX_ACTION_LENGTH or not ACTION_PATTERN.fullmatch(action):
        raise InvalidAuditEvent(f"audit action {action!r} is not a dotted lower-case name")
    return action


def _validated_object(object_type: str, object_id: str | uuid.UUID | None) -> tuple[str, str]:
    if object_type and not OBJECT_TYPE_PATTERN.fullmatch(object_type):
        raise InvalidAuditEvent(f"audit object type {object_type!r} is not a lower-case name")
    text = "" if object_id is None else str(object_id)
    if len(text) > MAX_OBJECT_ID_LENGTH:
        raise InvalidAuditEvent("audit object id is longer than 64 characters")
    return object_type, text


def _validated_details(details: Details | None) -> dict[str, DetailValue]:
    if not details:
        return {}
    if len(details) > MAX_DETAIL_KEYS:
        raise InvalidAuditEvent(f"audit details hold at most {MAX_DETAIL_KEYS} keys")
    clean: dict[str, DetailValue] = {}
    for key, value in details.items():
        if not isinstance(key, str) or not DETAIL_KEY_PATTERN.fullmatch(key):
            raise InvalidAuditEvent(f"audit detail key {key!r} is not a short lower-case name")
        if isinstance(value, uuid.UUID):
            value = str(value)
        if value is not None and not isinstance(value, str | int | bool):
            raise InvalidAuditEvent(f"audit detail {key!r} must be a string, integer or boolean")
        if isinstance(value, str) and len(value) > MAX_DETAIL_STRING_LENGTH:
            raise InvalidAuditEvent(f"audit detail {key!r} is longer than 200 characters")
        clean[key] = value
    return clean


def _new_event(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    outcome: str,
    details: Details | None,
) -> AuditEvent:
    if outcome not in Outcome.values:
        raise InvalidAuditEvent(f"audit outcome {outcome!r} is not 'allowed' or 'denied'")
    object_type, object_text = _validated_object(object_type, object_id)
    context = current_context()
    if actor is not None:
        actor_label = actor.email
    else:
        actor_label = "anonymous" if context is not None and context.request_id else "system"
    return AuditEvent(
        occurred_at=timezone.now(),
        actor=actor,
        actor_label=actor_label,
        action=_validated_action(action),
        object_type=object_type,
        object_id=object_text,
        outcome=outcome,
        request_id=context.request_id if context is not None else "",
        ip=context.ip if context is not None else None,
        details=_validated_details(details),
    )


def audit_record(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    outcome: str = Outcome.ALLOWED,
    details: Details | None = None,
) -> AuditEvent:
    """Insert one audit event in the caller's transaction and return it.

    Call it inside the service's ``transaction.atomic`` block: the event commits or rolls back
    with the change, and if the insert fails the exception propagates and the change fails.
    """
    event = _new_event(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        details=details,
    )
    event.save(force_insert=True)
    return event


def audit_phi_read(
    *,
    actor: User,
    object_type: str,
    object_id: str | uuid.UUID,
    details: Details | None = None,
) -> AuditEvent:
    """Record that ``actor`` is about to read clinical detail of an object (``<type>.read``).

    Call it before returning the data; if it raises, return nothing.

    Called outside a transaction (a GET), the event is committed in a transaction of its own,
    and on PostgreSQL that commit does not wait for the WAL flush (``synchronous_commit = off``
    for this transaction only, unless settings.AUDIT_PHI_READ_SYNCHRONOUS_COMMIT): waiting for
    the disk on every read cost 57 % of read throughput on this machine (``make bench``). The
    event is still inserted and committed before the data goes out, so every error the
    database reports still stops the read; only a crash of the database server itself within
    the WAL writer's interval (a fraction of a second) can lose it. A seal is committed
    synchronously after the event it links, so a sealed event is never lost. Inside a caller's
    transaction the event simply joins it: never make a caller's write asynchronous.
    """
    event = _new_event(
        actor=actor,
        action=f"{object_type}.read",
        object_type=object_type,
        object_id=object_id,
        outcome=Outcome.ALLOWED,
        details=details,
    )
    connection = transaction.get_connection()
    if (
        connection.in_atomic_block
        or connection.vendor != "postgresql"
        or settings.AUDIT_PHI_READ_SYNCHRONOUS_COMMIT
    ):
        event.save(force_insert=True)
    else:
        _insert_without_waiting_for_flush(event)
    return event


# The columns an event is inserted with (the sequence is the identity column's to give).
_INSERT_FIELDS = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]


def _insert_without_waiting_for_flush(event: AuditEvent) -> None:
    """One autocommitted INSERT whose commit does not wait for the WAL flush (PostgreSQL).

    ``set_config(..., true)`` lasts until the end of the statement's own implicit transaction,
    commit included, so this is one round trip: a BEGIN / SET LOCAL / INSERT / COMMIT sequence
    would be four, which under load cost more than the flush it saves.
    """
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _INSERT_FIELDS)
    placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
    values = [
        field.get_db_prep_save(getattr(event, field.attname), connection)
        for field in _INSERT_FIELDS
    ]
    table = quote(AuditEvent._meta.db_table)
    key = quote(AuditEvent._meta.pk.column)
    # Only the model's own table and column names are interpolated; values are parameters.
    sql = (
        "WITH durability AS (SELECT set_config('synchronous_commit', 'off', true)) "  # noqa: S608  # nosec B608
        f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM durability RETURNING {key}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        raise DatabaseError("the audit event was not inserted")
    event.sequence = row[0]
    event._state.adding = False
    event._state.db = connection.alias


def _record_durably(event: AuditEvent) -> None:
    """Insert ``event`` so that it survives the rollback of the caller's transaction.

    Outside any transaction it is inserted (and committed) at once. Inside one, within an audit
    scope, it waits for the transaction to commit or for the scope to close, whichever comes
    first (context.py explains why). Inside a transaction with no scope around it (a shell, a
    command that opened none) it is inserted in that transaction: best effort, and the log line
    written by the caller remains. Never raises: a failed write is logged, so it cannot hide the
    error the caller is about to raise.
    """
    connection = transaction.get_connection()
    context = current_context()
    if context is not None and connection.in_atomic_block:
        deferred = DeferredEvent(write=partial(_insert_now, event))
        context.deferred.append(deferred)
        # robust: a failed write on commit is retried when the scope closes.
        transaction.on_commit(deferred.flush, robust=True)
        return
    try:
        _insert_now(event)
    except Exception:
        logger.critical("audit.security_event_lost", extra={"action": event.action}, exc_info=True)


def _insert_now(event: AuditEvent) -> None:
    # Its own savepoint inside a transaction, so a failure cannot poison the caller's.
    with transaction.atomic():
        event.save(force_insert=True)


def audit_denied(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    details: Details | None = None,
) -> None:
    """Record a refused access (outcome "denied"), durably: it survives the NotFound/Forbidden
    that usually follows and rolls the surrounding transaction back.

    Selectors call it when a user asks for an object that exists but is not theirs, just before
    raising the same NotFound as for a missing one (never for a missing one: that would let the
    trail be flooded with guesses and says nothing about a real object). Never raises, so it
    cannot turn that NotFound into a 500: an event it cannot build or write is logged.
    """
    _record_durably_or_log(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )


def security_event_record(
    *,
    action: str,
    details: Details | None,
    actor: User | None = None,
    object_type: str = "",
    object_id: str | uuid.UUID | None = None,
) -> None:
    """Record a security event (a decryption failure, a tampering sign) that must be kept even
    when the surrounding transaction rolls back. Outcome is "denied": something failed closed.

    Never raises (it is called while another error is on its way up): an event it cannot build
    or write is logged at CRITICAL instead.
    """
    _record_durably_or_log(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )


def _record_durably_or_log(
    *,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    details: Details | None,
) -> None:
    try:
        event = _new_event(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            outcome=Outcome.DENIED,
            details=details,
        )
    except InvalidAuditEvent:
        logger.critical("audit.security_event_lost", extra={"action": action}, exc_info=True)
        return
    _record_durably(event)


def audit_export_record(*, actor: User, filters: Details, rows: int) -> AuditEvent:
    """Record that ``actor`` exported ``rows`` audit events (the filters are public ids)."""
    with transaction.atomic():
        return audit_record(
            actor=actor,
            action="audit.exported",
            object_type="audit_trail",
            object_id=None,
            details={**filters, "rows": rows},
        )
