"""The sealer: links committed audit events into the HMAC chain, off the request path.

Requests only insert events; nothing they do waits for a lock. One sealer at a time (a
transaction-level advisory lock on PostgreSQL, held by the sealer only) links events in sequence
order. The hard part is the sequence gaps:

* A missing sequence number is either a rolled-back transaction (gone for ever) or one still in
  flight: PostgreSQL hands out identity values at INSERT time, so an id allocated earlier can
  commit after a higher one. Sealing past an in-flight id would leave it nowhere to go.
* The sealer therefore waits until a gap has been outstanding for a grace period before treating
  it as rolled back. "Outstanding for" is measured soundly with the sealer's own clock: each run
  records (highest visible sequence, time). If an observation (m, t) exists with t at least the
  grace period ago and a missing id g < m, then g was allocated before m, m before t, so the
  transaction holding g (if any) has been running for at least the grace period. Event
  timestamps are not used for this: they come from application clocks, and a transaction can
  have started long before its insert.
* A transaction still running after the grace period can commit later anyway. Accepted gaps are
  recorded (AuditGap); each run looks for events that appeared inside recent gaps and links them
  at the end of the chain (logged as ``audit.sealed_late``), so no event is ever left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.audit.chain import chain_key, event_content, head_mac, link_hash
from portal.audit.models import AuditChainHead, AuditEvent, AuditGap, AuditSeal

logger = logging.getLogger("portal.audit")

# Arbitrary but fixed: "audit" as a 64-bit key for pg_try_advisory_xact_lock.
SEALER_LOCK_KEY = 0x6175646974
DEFAULT_BATCH_SIZE = 2000
# Events committing later than this after their gap was accepted are not looked for again by
# the sealer; audit_verify still reports them as unsealed.
LATE_EVENT_WINDOW = timedelta(days=1)


@dataclass
class SealResult:
    sealed: int = 0
    late: int = 0
    gaps: int = 0
    busy: bool = False
    waiting_at: int | None = None
    """The first missing sequence the sealer is waiting on (too young to treat as rolled
    back), if it stopped at one."""


def default_gap_grace() -> timedelta:
    return timedelta(seconds=float(settings.AUDIT_SEAL_GAP_GRACE_SECONDS))


def audit_seal(
    *,
    now: datetime | None = None,
    gap_grace: timedelta | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SealResult:
    """Link every committed, unsealed event that can safely be linked; return what was done.

    Runs batch after batch (one short transaction each) until nothing more can be sealed. Returns
    at once with ``busy=True`` when another sealer holds the lock.
    """
    grace = default_gap_grace() if gap_grace is None else gap_grace
    total = SealResult()
    while True:
        batch = _seal_batch(fixed_now=now, grace=grace, batch_size=batch_size)
        total.sealed += batch.sealed
        total.late += batch.late
        total.gaps += batch.gaps
        total.busy = batch.busy
        total.waiting_at = batch.waiting_at
        if batch.busy or batch.sealed + batch.late < batch_size:
            return total


def _try_lock() -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEALER_LOCK_KEY])
            row = cursor.fetchone()
        return bool(row and row[0])
    # SQLite (development) allows one writer: touching the head row takes the write lock, so a
    # second sealer waits here and then reads the state the first one left.
    AuditChainHead.objects.filter(pk=1).update(updated_at=timezone.now())
    return True


def _seal_batch(*, fixed_now: datetime | None, grace: timedelta, batch_size: int) -> SealResult:
    result = SealResult()
    with transaction.atomic():
        if not _try_lock():
            result.busy = True
            return result
        head, _created = AuditChainHead.objects.get_or_create(pk=1)
        highest = AuditEvent.objects.aggregate(highest=Max("sequence"))["highest"] or 0
        # Read the clock after the query: the observation claims "every id up to ``highest``
        # was allocated before this moment", which must not be earlier than the query.
        now = fixed_now or timezone.now()
        safe_below = _record_observation(head, highest=highest, now=now, grace=grace)
        key = chain_key()
        linker = _Linker(head=head, key=key, now=now)

        late = _late_events(now=now, limit=batch_size)
        for event in late:
            linker.link(event)
        if late:
            logger.warning(
                "audit.sealed_late",
                extra={"sequences": [event.sequence for event in late]},
            )
        result.late = len(late)

        events = list(
            AuditEvent.objects.filter(sequence__gt=head.through_sequence).order_by("sequence")[
                : max(batch_size - len(late), 0)
            ]
        )
        expected = head.through_sequence + 1
        gaps: list[AuditGap] = []
        for event in events:
            if event.sequence > expected:
                # Every missing id below event.sequence must be older than the grace period.
                if event.sequence > safe_below:
                    result.waiting_at = expected
                    break
                gaps.append(
                    AuditGap(
                        first_sequence=expected,
                        last_sequence=event.sequence - 1,
                        accepted_at=now,
                    )
                )
            linker.link(event)
            result.sealed += 1
            expected = event.sequence + 1
        head.through_sequence = expected - 1
        AuditGap.objects.bulk_create(gaps)
        AuditSeal.objects.bulk_create(linker.seals)
        result.gaps = len(gaps)
        head.head_mac = head_mac(key, head)
        head.updated_at = now
        head.save()
    if result.sealed or result.late:
        # An external witness of the chain's end: the logs live outside the database.
        logger.info(
            "audit.sealed",
            extra={"position": head.position, "sequence": head.last_sequence,
                   "chain_hash": head.chain_hash},
        )  # fmt: skip
    return result


class _Linker:
    """Appends seals after the head, keeping the head's end-of-chain fields current."""

    def __init__(self, *, head: AuditChainHead, key: bytes, now: datetime) -> None:
        self.head = head
        self.key = key
        self.now = now
        self.seals: list[AuditSeal] = []

    def link(self, event: AuditEvent) -> None:
        head = self.head
        position = head.position + 1
        chain_hash = link_hash(
            self.key,
            position=position,
            previous_sequence=head.last_sequence,
            previous_hash=head.chain_hash,
            content=event_content(event),
        )
        self.seals.append(
            AuditSeal(
                position=position,
                event=event,
                previous_sequence=head.last_sequence,
                previous_hash=head.chain_hash,
                chain_hash=chain_hash,
                sealed_at=self.now,
            )
        )
        head.position = position
        head.last_sequence = event.sequence
        head.chain_hash = chain_hash


def _late_events(*, now: datetime, limit: int) -> list[AuditEvent]:
    """Events that committed inside a gap the sealer had already accepted as rolled back."""
    ranges = AuditGap.objects.filter(accepted_at__gte=now - LATE_EVENT_WINDOW).values_list(
        "first_sequence", "last_sequence"
    )
    condition = Q()
    for first, last in ranges:
        condition |= Q(sequence__range=(first, last))
    if not condition:
        return []
    return list(
        AuditEvent.objects.filter(condition, seal__isnull=True).order_by("sequence")[:limit]
    )


def _record_observation(
    head: AuditChainHead, *, highest: int, now: datetime, grace: timedelta
) -> int:
    """Note that ``highest`` was visible at ``now``; return the bound below which every missing
    id has been outstanding for at least ``grace`` (see the module docstring)."""
    observations: list[tuple[int, datetime]] = [
        (int(sequence), moment)
        for sequence, text in _as_pairs(head.observations)
        if (moment := parse_datetime(text)) is not None and moment <= now
    ]
    observations.append((highest, now))
    cutoff = now - grace
    old = [sequence for sequence, moment in observations if moment <= cutoff]
    safe_below = max(old, default=0)
    # Keep what can still matter: everything younger than the cutoff and the newest older one.
    newest_old = max(
        (item for item in observations if item[1] <= cutoff), key=lambda item: item[1],
        default=None,
    )  # fmt: skip
    kept = [item for item in observations if item[1] > cutoff]
    if newest_old is not None:
        kept.insert(0, (safe_below, newest_old[1]))
    head.observations = [[sequence, moment.isoformat()] for sequence, moment in kept]
    return safe_below


def _as_pairs(value: Any) -> list[tuple[Any, str]]:
    if not isinstance(value, list):
        return []
    return [
        (item[0], str(item[1]))
        for item in value
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
    ]
