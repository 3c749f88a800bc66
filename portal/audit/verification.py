"""Walking the chain: the first altered, removed or reordered event, and events left unsealed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from portal.audit.chain import chain_key, event_content, head_mac, link_hash, same_hash
from portal.audit.models import AuditChainHead, AuditEvent, AuditSeal

ALTERED = "altered"
REMOVED = "removed"
REORDERED = "reordered"
TRUNCATED = "truncated"
HEAD_INVALID = "head_invalid"
UNSEALED_REPORT_LIMIT = 20


@dataclass(frozen=True)
class ChainFailure:
    kind: str
    sequence: int | None
    message: str


@dataclass
class VerificationReport:
    checked: int = 0
    failure: ChainFailure | None = None
    unsealed_count: int = 0
    unsealed_sequences: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.unsealed_count == 0


def default_unsealed_after() -> timedelta:
    return timedelta(seconds=float(settings.AUDIT_UNSEALED_ALERT_SECONDS))


def audit_verify(
    *, now: datetime | None = None, unsealed_after: timedelta | None = None
) -> VerificationReport:
    """Recompute every link of the chain in position order and stop at the first bad one.

    Read-only; it may run while the sealer works: it checks the chain up to the head as last
    committed (head and seals commit together).
    """
    now = now or timezone.now()
    key = chain_key()
    report = VerificationReport()
    head = AuditChainHead.objects.filter(pk=1).first()
    seals = AuditSeal.objects.select_related("event").order_by("position")
    if head is not None:
        seals = seals.filter(position__lte=head.position)
    report.failure = _walk(key, seals, head, report)
    stale = AuditEvent.objects.filter(
        seal__isnull=True, occurred_at__lt=now - (unsealed_after or default_unsealed_after())
    ).order_by("sequence")
    report.unsealed_count = stale.count()
    report.unsealed_sequences = list(
        stale.values_list("sequence", flat=True)[:UNSEALED_REPORT_LIMIT]
    )
    return report


def _walk(
    key: bytes,
    seals: QuerySet[AuditSeal],
    head: AuditChainHead | None,
    report: VerificationReport,
) -> ChainFailure | None:
    previous_position, previous_sequence, previous_hash = 0, None, ""
    # Inner join: a seal whose event row is gone is skipped here and shows up as a hole in the
    # positions at the next seal.
    for seal in seals.iterator(chunk_size=2000):
        event = seal.event
        expected = link_hash(
            key,
            position=seal.position,
            previous_sequence=seal.previous_sequence,
            previous_hash=seal.previous_hash,
            content=event_content(event),
        )
        if not same_hash(expected, seal.chain_hash):
            return _mismatch(key, event, seals)
        if (
            seal.position != previous_position + 1
            or seal.previous_sequence != previous_sequence
            or seal.previous_hash != previous_hash
        ):
            # This link is authentic, so the event it names as its predecessor is missing.
            return ChainFailure(
                REMOVED,
                seal.previous_sequence,
                f"event {seal.previous_sequence} was removed: event {event.sequence} (position "
                f"{seal.position}) is linked to it, but the chain before it ends at position "
                f"{previous_position}.",
            )
        previous_position, previous_sequence, previous_hash = (
            seal.position,
            event.sequence,
            seal.chain_hash,
        )
        report.checked += 1
    if head is None:
        if previous_position:
            return ChainFailure(HEAD_INVALID, None, "the chain head row is missing.")
        return None
    if not same_hash(head_mac(key, head), head.head_mac):
        return ChainFailure(HEAD_INVALID, head.last_sequence, "the chain head was altered.")
    if head.position != previous_position or not same_hash(head.chain_hash, previous_hash):
        return ChainFailure(
            TRUNCATED,
            head.last_sequence,
            f"events were removed from the end of the chain: it was sealed up to event "
            f"{head.last_sequence} (position {head.position}) but now ends at position "
            f"{previous_position}.",
        )
    return None


def _mismatch(key: bytes, event: AuditEvent, seals: QuerySet[AuditSeal]) -> ChainFailure:
    """Tell a moved event (its content was sealed under another sequence) from an altered one."""
    for other in seals.iterator(chunk_size=2000):
        if other.event_id == event.sequence:
            continue
        candidate = link_hash(
            key,
            position=other.position,
            previous_sequence=other.previous_sequence,
            previous_hash=other.previous_hash,
            content=event_content(event, sequence=other.event_id),
        )
        if same_hash(candidate, other.chain_hash):
            return ChainFailure(
                REORDERED,
                event.sequence,
                f"event {event.sequence} was reordered: it now holds the content sealed as "
                f"event {other.event_id}.",
            )
    return ChainFailure(
        ALTERED,
        event.sequence,
        f"event {event.sequence} was altered: its content no longer matches its seal.",
    )
