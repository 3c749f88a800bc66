"""Helpers for the audit tests: backend switches and tampering with the triggers disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record

ON_POSTGRESQL = connection.vendor == "postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs PostgreSQL (set DATABASE_URL): triggers and real concurrency"
)

TRIGGERS = {
    "audit_auditevent": "audit_event_append_only",
    "audit_auditseal": "audit_seal_append_only",
}


@contextmanager
def triggers_disabled() -> Iterator[None]:
    """Tamper as someone with table-owner rights would: with the append-only triggers off."""
    if not ON_POSTGRESQL:
        yield  # SQLite has no triggers; the model's refusal is bypassed by raw SQL anyway.
        return
    _alter_triggers("DISABLE")
    try:
        yield
    finally:
        _alter_triggers("ENABLE")


def _alter_triggers(change: str) -> None:
    with connection.cursor() as cursor:
        # ALTER TABLE refuses while deferred foreign-key checks are pending: run them first.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table, trigger in TRIGGERS.items():
            cursor.execute(f"ALTER TABLE {table} {change} TRIGGER {trigger}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def execute(sql: str, params: list[Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def record_events(count: int, *, action: str = "referral.updated") -> list[AuditEvent]:
    return [
        audit_record(actor=None, action=action, object_type="referral", object_id=f"ref-{index}")
        for index in range(count)
    ]


def explicit_event(sequence: int, *, occurred_at: datetime | None = None) -> AuditEvent:
    """An event with a chosen sequence number: how the tests lay out gaps on every backend."""
    event = AuditEvent(
        sequence=sequence,
        occurred_at=occurred_at or timezone.now(),
        actor_label="system",
        action="referral.updated",
        object_type="referral",
        object_id=f"ref-{sequence}",
    )
    event.save()
    return event


def next_free_sequence() -> int:
    """A sequence number well above any in use (PostgreSQL sequences survive test rollbacks)."""
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return (last or 0) + 1000


def later(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)
