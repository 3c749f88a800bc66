"""Concurrent writers on PostgreSQL: out-of-order commits and rollbacks, one sealer at a time,
and still one linear, valid chain."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from portal.audit.models import AuditEvent, AuditSeal
from portal.audit.sealing import SEALER_LOCK_KEY, audit_seal
from portal.audit.services import audit_record
from portal.audit.verification import audit_verify
from tests.portal.audit.helpers import postgresql_only, record_events

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]

WRITERS = 20
EVENTS_PER_WRITER = 15


class Rollback(Exception):
    pass


def test_twenty_concurrent_writers_some_rolling_back_leave_a_linear_valid_chain() -> None:
    committed: list[int] = []
    rolled_back: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS + 3)
    writers_done = threading.Event()
    sealed_while_writing: list[int] = []

    def writer(number: int) -> None:
        generator = random.Random(number)  # jitter, not security
        try:
            start.wait()
            for index in range(EVENTS_PER_WRITER):
                try:
                    with transaction.atomic():
                        event = audit_record(
                            actor=None,
                            action="referral.updated",
                            object_type="referral",
                            object_id=f"writer-{number}-{index}",
                        )
                        # Hold the transaction open a little: ids allocated earlier then commit
                        # after higher ones, as they do under load.
                        time.sleep(generator.uniform(0, 0.03))
                        if generator.random() < 0.3:
                            raise Rollback
                    with lock:
                        committed.append(event.sequence)
                except Rollback:
                    with lock:
                        rolled_back.append(event.sequence)
                time.sleep(generator.uniform(0, 0.08))  # think time between requests
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    def sealer() -> None:
        # Two of these run at once, with a real grace period, while the writers work.
        try:
            start.wait()
            while not writers_done.is_set():
                result = audit_seal(gap_grace=timedelta(seconds=1))
                with lock:
                    sealed_while_writing.append(result.sealed + result.late)
                time.sleep(0.01)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    # Start the chain past the ids earlier tests used (sequences are not reset between tests),
    # so the sealers work on this test's events from the start.
    record_events(1)
    audit_seal(gap_grace=timedelta(0))
    first = AuditEvent.objects.get().sequence

    writer_threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    sealer_threads = [threading.Thread(target=sealer, name=f"sealer-{n}") for n in range(2)]
    for thread in writer_threads + sealer_threads:
        thread.start()
    start.wait()
    for thread in writer_threads:
        thread.join(timeout=120)
    writers_done.set()
    for thread in sealer_threads:
        thread.join(timeout=120)
    assert errors == []

    assert sum(sealed_while_writing) > 0
    # Every writer has finished, so no transaction is in flight: no grace period is needed.
    audit_seal(gap_grace=timedelta(0))

    assert len(committed) + len(rolled_back) == WRITERS * EVENTS_PER_WRITER
    assert 0 < len(rolled_back) < len(committed)
    expected = [first, *sorted(committed)]
    assert sorted(AuditEvent.objects.values_list("sequence", flat=True)) == expected
    seals = list(AuditSeal.objects.order_by("position").values_list("position", "event_id"))
    # Linear: positions 1..n without a hole, every committed event exactly once...
    assert [position for position, _ in seals] == list(range(1, len(expected) + 1))
    # ...and in sequence order: the concurrent sealers never stepped over an id still in
    # flight (which would have had to be linked late, out of order).
    assert [sequence for _, sequence in seals] == expected
    report = audit_verify(unsealed_after=timedelta(0))
    assert (report.ok, report.checked, report.unsealed_count) == (True, len(expected), 0)


def test_only_one_sealer_runs_at_a_time() -> None:
    record_events(3)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEALER_LOCK_KEY])

            result = audit_seal(gap_grace=timedelta(0))

            assert (result.busy, result.sealed) == (True, 0)
            assert AuditSeal.objects.count() == 0
            cursor.execute("ROLLBACK")
    finally:
        holder.close()

    result = audit_seal(gap_grace=timedelta(0))
    assert (result.busy, result.sealed) == (False, 3)
    assert connection.vendor == "postgresql"
