"""The audit tables are append-only: in Python on every backend, by trigger on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction

from portal.audit.models import AppendOnlyError, AuditEvent, AuditSeal
from portal.audit.sealing import audit_seal
from portal.audit.services import audit_record
from tests.portal.audit.helpers import execute, postgresql_only

pytestmark = pytest.mark.django_db


def _sealed_event() -> AuditEvent:
    event = audit_record(
        actor=None, action="referral.updated", object_type="referral", object_id="r-1"
    )
    audit_seal(gap_grace=timedelta(0))
    return event


def test_saving_an_existing_event_again_is_refused() -> None:
    event = _sealed_event()
    event.action = "referral.deleted"

    with pytest.raises(AppendOnlyError, match="append-only: update refused"):
        event.save()

    assert AuditEvent.objects.get(pk=event.pk).action == "referral.updated"


def test_deleting_an_event_is_refused() -> None:
    event = _sealed_event()

    with pytest.raises(AppendOnlyError, match="append-only: delete refused"):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda events: events.update(action="referral.deleted"),
        lambda events: events.delete(),
        lambda events: events.update_or_create(
            sequence=events.get().sequence, defaults={"action": "x.y"}
        ),
        lambda events: AuditEvent.objects.bulk_update(list(events), ["action"]),
    ],
    ids=["update", "delete", "update_or_create", "bulk_update"],
)
def test_bulk_changes_through_the_orm_are_refused(change: object) -> None:
    event = _sealed_event()

    # Its own savepoint: bulk_update runs in an atomic block without one.
    with pytest.raises(AppendOnlyError), transaction.atomic():
        change(AuditEvent.objects.filter(pk=event.pk))  # type: ignore[operator]

    assert AuditEvent.objects.get(pk=event.pk).action == "referral.updated"


def test_seals_are_append_only_too() -> None:
    event = _sealed_event()
    seal = AuditSeal.objects.get(event=event)

    with pytest.raises(AppendOnlyError):
        seal.save()
    with pytest.raises(AppendOnlyError):
        seal.delete()
    with pytest.raises(AppendOnlyError):
        AuditSeal.objects.filter(pk=seal.pk).update(chain_hash="0" * 64)
    with pytest.raises(AppendOnlyError):
        AuditSeal.objects.all().delete()

    assert AuditSeal.objects.get(pk=seal.pk).chain_hash == seal.chain_hash


@postgresql_only
@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("audit_auditevent", "UPDATE audit_auditevent SET action = 'x.y' WHERE sequence = %s"),
        ("audit_auditevent", "DELETE FROM audit_auditevent WHERE sequence = %s"),
        ("audit_auditseal", "UPDATE audit_auditseal SET chain_hash = 'x' WHERE sequence = %s"),
        ("audit_auditseal", "DELETE FROM audit_auditseal WHERE sequence = %s"),
    ],
)
def test_the_trigger_refuses_raw_sql_updates_and_deletes(table: str, statement: str) -> None:
    event = _sealed_event()
    seal = AuditSeal.objects.get(event=event)
    operation = statement.split()[0]

    with (
        pytest.raises(DatabaseError, match=f"audit table {table} is append-only: {operation}"),
        transaction.atomic(),
    ):
        execute(statement, [event.sequence])

    assert AuditEvent.objects.get(pk=event.pk).action == "referral.updated"
    assert AuditSeal.objects.get(pk=seal.pk).chain_hash == seal.chain_hash


@postgresql_only
def test_the_trigger_still_allows_inserts() -> None:
    before = AuditEvent.objects.count()

    execute(
        "INSERT INTO audit_auditevent (occurred_at, actor_label, action, object_type, object_id,"
        " outcome, request_id, details) VALUES (now(), 'system', 'a.b', '', '', 'allowed', '',"
        " '{}')"
    )

    assert AuditEvent.objects.count() == before + 1
