"""The hash chain: sealing in sequence order, gaps, late commits, and audit_verify naming
each kind of tampering (done with the append-only triggers disabled) by sequence number."""

from __future__ import annotations

import itertools
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from portal.audit.models import AuditChainHead, AuditEvent, AuditGap, AuditSeal
from portal.audit.sealing import audit_seal
from portal.audit.verification import (
    ALTERED,
    HEAD_INVALID,
    REMOVED,
    REORDERED,
    TRUNCATED,
    audit_verify,
)
from tests.portal.audit.helpers import (
    execute,
    explicit_event,
    later,
    next_free_sequence,
    record_events,
    triggers_disabled,
)

pytestmark = pytest.mark.django_db

NO_GRACE = timedelta(0)


def _chain() -> list[int]:
    """Event sequence numbers in chain order."""
    return list(AuditSeal.objects.order_by("position").values_list("event_id", flat=True))


def _sealed_events(count: int) -> list[int]:
    events = record_events(count)
    audit_seal(gap_grace=NO_GRACE)
    return [event.sequence for event in events]


def test_the_sealer_links_every_committed_event_in_sequence_order() -> None:
    sequences = _sealed_events(5)

    assert _chain() == sequences
    assert list(AuditSeal.objects.order_by("position").values_list("position", flat=True)) == [
        1,
        2,
        3,
        4,
        5,
    ]
    seals = list(AuditSeal.objects.order_by("position"))
    assert seals[0].previous_sequence is None
    assert seals[0].previous_hash == ""
    for previous, seal in itertools.pairwise(seals):
        assert seal.previous_sequence == previous.event_id
        assert seal.previous_hash == previous.chain_hash
    head = AuditChainHead.objects.get()
    assert (head.position, head.last_sequence, head.chain_hash) == (
        5,
        sequences[-1],
        seals[-1].chain_hash,
    )


def test_sealing_twice_changes_nothing_and_new_events_extend_the_chain() -> None:
    first = _sealed_events(3)
    assert audit_seal(gap_grace=NO_GRACE).sealed == 0

    second = _sealed_events(2)

    assert _chain() == first + second
    report = audit_verify()
    assert (report.ok, report.checked, report.failure) == (True, 5, None)


def test_an_intact_chain_verifies_and_the_command_says_so() -> None:
    _sealed_events(4)
    output = StringIO()

    call_command("audit_verify", stdout=output)

    assert output.getvalue() == "Checked 4 sealed events.\nThe audit chain is intact.\n"


def test_an_empty_trail_verifies() -> None:
    report = audit_verify()

    assert (report.ok, report.checked) == (True, 0)


def test_the_chain_depends_on_the_key_kept_outside_the_database() -> None:
    sequences = _sealed_events(2)

    with override_settings(PORTAL_AUDIT_HMAC_KEY="B" * 43 + "="):
        report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (ALTERED, sequences[0])


def test_an_altered_event_is_named() -> None:
    sequences = _sealed_events(5)

    with triggers_disabled():
        execute(
            "UPDATE audit_auditevent SET action = 'referral.read' WHERE sequence = %s",
            [sequences[2]],
        )
    report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (ALTERED, sequences[2])
    assert report.failure.message == (
        f"event {sequences[2]} was altered: its content no longer matches its seal."
    )
    assert report.checked == 2


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("occurred_at", "2020-01-01 00:00:00+00:00"),
        ("actor_label", "someone-else@example.org"),
        ("object_id", "ref-999"),
        ("outcome", "denied"),
        ("request_id", "forged-request"),
        ("ip", "192.0.2.1"),
        ("details", '{"forged": true}'),
    ],
)
def test_altering_any_column_is_noticed(column: str, value: str) -> None:
    sequences = _sealed_events(3)

    with triggers_disabled():
        statement = f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = %s"  # noqa: S608
        execute(statement, [value, sequences[1]])

    report = audit_verify()
    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (ALTERED, sequences[1])


def test_a_removed_event_is_named_by_its_sequence() -> None:
    sequences = _sealed_events(5)

    with triggers_disabled():
        execute("DELETE FROM audit_auditseal WHERE sequence = %s", [sequences[2]])
        execute("DELETE FROM audit_auditevent WHERE sequence = %s", [sequences[2]])
    report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (REMOVED, sequences[2])
    assert report.failure.message.startswith(f"event {sequences[2]} was removed")


def test_an_event_whose_seal_was_removed_is_named_too() -> None:
    sequences = _sealed_events(4)

    with triggers_disabled():
        execute("DELETE FROM audit_auditseal WHERE sequence = %s", [sequences[1]])
    report = audit_verify(unsealed_after=timedelta(hours=1))

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (REMOVED, sequences[1])


def test_a_removed_first_event_is_named() -> None:
    sequences = _sealed_events(3)

    with triggers_disabled():
        execute("DELETE FROM audit_auditseal WHERE sequence = %s", [sequences[0]])
        execute("DELETE FROM audit_auditevent WHERE sequence = %s", [sequences[0]])
    report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (REMOVED, sequences[0])


def test_two_swapped_events_are_named_as_reordered() -> None:
    sequences = _sealed_events(5)
    first, second = sequences[1], sequences[3]

    with triggers_disabled():
        # Swap the two rows' sequence numbers (through a free one: the key is unique).
        execute("UPDATE audit_auditevent SET sequence = -1 WHERE sequence = %s", [first])
        execute("UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s", [first, second])
        execute("UPDATE audit_auditevent SET sequence = %s WHERE sequence = -1", [second])
    report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (REORDERED, first)
    assert report.failure.message == (
        f"event {first} was reordered: it now holds the content sealed as event {second}."
    )


def test_events_cut_off_the_end_of_the_chain_are_noticed() -> None:
    sequences = _sealed_events(4)

    with triggers_disabled():
        for sequence in sequences[2:]:
            execute("DELETE FROM audit_auditseal WHERE sequence = %s", [sequence])
            execute("DELETE FROM audit_auditevent WHERE sequence = %s", [sequence])
    report = audit_verify()

    assert report.failure is not None
    assert (report.failure.kind, report.failure.sequence) == (TRUNCATED, sequences[-1])


def test_a_forged_chain_head_is_noticed() -> None:
    sequences = _sealed_events(4)
    third_seal = AuditSeal.objects.get(event_id=sequences[2])

    with triggers_disabled():
        execute("DELETE FROM audit_auditseal WHERE sequence = %s", [sequences[3]])
        execute("DELETE FROM audit_auditevent WHERE sequence = %s", [sequences[3]])
    # Rolling the head back to the new last link needs the key for its MAC.
    execute(
        "UPDATE audit_auditchainhead SET position = 3, last_sequence = %s, chain_hash = %s",
        [sequences[2], third_seal.chain_hash],
    )
    report = audit_verify()

    assert report.failure is not None
    assert report.failure.kind == HEAD_INVALID


def test_the_command_names_the_tampered_event_and_exits_non_zero() -> None:
    sequences = _sealed_events(3)
    with triggers_disabled():
        execute(
            "UPDATE audit_auditevent SET object_id = 'ref-x' WHERE sequence = %s", [sequences[1]]
        )

    with pytest.raises(CommandError) as raised:
        call_command("audit_verify", stdout=StringIO())

    assert str(raised.value) == (
        f"Chain broken (altered): event {sequences[1]} was altered: its content no longer "
        "matches its seal."
    )


def test_events_left_unsealed_for_more_than_a_minute_are_reported() -> None:
    sequences = _sealed_events(2)
    fresh = record_events(1)[0]

    assert audit_verify().ok  # unsealed for a moment only: that is normal

    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        report = audit_verify()
        with pytest.raises(CommandError) as raised:
            call_command("audit_verify", stdout=StringIO())

    assert (report.ok, report.failure, report.unsealed_count) == (False, None, 1)
    assert report.unsealed_sequences == [fresh.sequence]
    assert str(raised.value) == (
        f"1 events left unsealed: {fresh.sequence}. Is the sealer running?"
    )
    assert report.checked == len(sequences)


# --- gaps --------------------------------------------------------------------------------------


def test_a_young_gap_holds_the_sealer_back_and_an_old_one_is_stepped_over() -> None:
    base = next_free_sequence()
    start = timezone.now()
    explicit_event(base + 1)
    explicit_event(base + 2)
    # First contact: even the gap below base + 1 is unknown territory for a grace period.
    assert audit_seal(now=start).waiting_at == 1
    assert audit_seal(now=start + timedelta(seconds=31)).sealed == 2

    explicit_event(base + 5)  # base + 3 and + 4: rolled back, or still in flight?
    result = audit_seal(now=start + timedelta(seconds=40))
    assert (result.sealed, result.waiting_at) == (0, base + 3)
    result = audit_seal(now=start + timedelta(seconds=60))
    assert (result.sealed, result.waiting_at) == (0, base + 3)

    result = audit_seal(now=start + timedelta(seconds=71))

    assert (result.sealed, result.gaps, result.waiting_at) == (1, 1, None)
    assert _chain() == [base + 1, base + 2, base + 5]
    assert list(
        AuditGap.objects.order_by("first_sequence").values_list("first_sequence", "last_sequence")
    ) == [(1, base), (base + 3, base + 4)]
    assert audit_verify(now=start + timedelta(seconds=71)).ok


def test_a_gap_filled_by_a_late_commit_within_the_grace_period_is_sealed_in_order() -> None:
    base = next_free_sequence()
    start = timezone.now()
    explicit_event(base + 1)
    audit_seal(now=start)
    audit_seal(now=start + timedelta(seconds=31))
    explicit_event(base + 3)
    assert audit_seal(now=start + timedelta(seconds=35)).waiting_at == base + 2

    explicit_event(base + 2)  # the transaction in flight commits
    result = audit_seal(now=start + timedelta(seconds=40))

    assert (result.sealed, result.gaps, result.late) == (2, 0, 0)
    assert _chain() == [base + 1, base + 2, base + 3]


def test_an_event_committing_after_its_gap_was_stepped_over_is_linked_at_the_end() -> None:
    base = next_free_sequence()
    start = timezone.now()
    explicit_event(base + 1)
    explicit_event(base + 3)
    audit_seal(now=start)
    audit_seal(now=start + timedelta(seconds=31))
    assert _chain() == [base + 1, base + 3]

    # A transaction that outlived the grace period commits at last...
    explicit_event(base + 2)
    explicit_event(base + 4)
    result = audit_seal(now=start + timedelta(seconds=40))

    # ...and is linked, late, at the end: nothing is ever left out of the chain.
    assert (result.late, result.sealed) == (1, 1)
    assert _chain() == [base + 1, base + 3, base + 2, base + 4]
    assert audit_verify(now=start + timedelta(seconds=40)).ok


def test_the_seal_command_reports_what_it_did() -> None:
    base = next_free_sequence()
    explicit_event(base + 1)
    output = StringIO()

    with time_machine.travel(later(0), tick=False):
        call_command("audit_seal", stdout=output)

    assert output.getvalue() == (
        "Sealed 0 events (0 late), stepped over 0 rolled-back gaps.\n"
        "Waiting on sequence 1: it may belong to a transaction still in flight; it is stepped "
        "over once the grace period has passed.\n"
    )
    with time_machine.travel(later(31), tick=False):
        output = StringIO()
        call_command("audit_seal", stdout=output)

    assert output.getvalue() == "Sealed 1 events (0 late), stepped over 1 rolled-back gaps.\n"
    assert _chain() == [base + 1]
    assert AuditEvent.objects.count() == 1
