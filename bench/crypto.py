"""Encryption benchmarks for ``make bench``: envelope cost per value, and saves with and without it.

Each benchmark returns rows ``(name, microseconds per operation, baseline microseconds or
None)``; the baseline is the same operation without encryption, so the table shows the ratio.
The envelope rows have no baseline: they are the encryption alone (the issue's bound is "well
under a millisecond").

The model benchmarks create two throwaway tables (the same model with an ``EncryptedTextField``
and with a plain ``TextField``) in the database the runner prepared, and drop them afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from django.db import connection, models, transaction

from portal.core.models import BaseModel
from portal.crypto.envelope import associated_data, decrypt_value, encrypt_value
from portal.crypto.fields import EncryptedTextField
from portal.crypto.keys import keyring

Row = tuple[str, float, float | None]

BODY = ("message body " + os.urandom(2048).hex())[:4096]  # 4 KB of text
BODY_BYTES = BODY.encode()
assert len(BODY_BYTES) == 4096  # noqa: S101 - benchmark precondition


class BenchEncryptedMessage(BaseModel):
    body = EncryptedTextField()

    objects: ClassVar[models.Manager[BenchEncryptedMessage]] = models.Manager()

    class Meta:
        app_label = "crypto"
        db_table = "bench_encrypted_message"

    def __str__(self) -> str:
        return str(self.public_id)


class BenchPlainMessage(BaseModel):
    body = models.TextField()

    objects: ClassVar[models.Manager[BenchPlainMessage]] = models.Manager()

    class Meta:
        app_label = "crypto"
        db_table = "bench_plain_message"

    def __str__(self) -> str:
        return str(self.public_id)


def per_op_us(operation: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs of ``number`` calls, in microseconds per call."""
    return paired_us(operation, None, number=number, repeat=repeat)[0]


def paired_us(
    operation: Callable[[], object],
    baseline: Callable[[], object] | None,
    *,
    number: int,
    repeat: int = 5,
) -> tuple[float, float | None]:
    """Best of ``repeat`` runs each, the two alternating so machine load hits both alike."""
    best = float("inf")
    best_baseline = float("inf")
    for _ in range(repeat):
        for function, is_baseline in ((operation, False), (baseline, True)):
            if function is None:
                continue
            start = time.perf_counter()
            with transaction.atomic():
                for _ in range(number):
                    function()
            elapsed = time.perf_counter() - start
            if is_baseline:
                best_baseline = min(best_baseline, elapsed)
            else:
                best = min(best, elapsed)
    return best / number * 1e6, (None if baseline is None else best_baseline / number * 1e6)


@contextmanager
def bench_tables() -> Iterator[None]:
    with connection.schema_editor() as editor:
        editor.create_model(BenchEncryptedMessage)
        editor.create_model(BenchPlainMessage)
    try:
        yield
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(BenchEncryptedMessage)
            editor.delete_model(BenchPlainMessage)


def envelope_rows() -> list[Row]:
    ring = keyring()
    ad = associated_data("messaging", "message", "body", "3f2c1a9e-0000-4000-8000-000000000001")
    token = encrypt_value(ring, BODY_BYTES, associated_data=ad)
    return [
        (
            "encrypt 4 KB + wrap its new DEK (envelope)",
            per_op_us(lambda: encrypt_value(ring, BODY_BYTES, associated_data=ad), number=5_000),
            None,
        ),
        (
            "unwrap DEK + decrypt 4 KB (envelope)",
            per_op_us(lambda: decrypt_value(ring, token, associated_data=ad), number=5_000),
            None,
        ),
    ]


def model_rows() -> list[Row]:
    """Saves and reads inside a transaction: the commit costs both the same and, on SQLite or
    PostgreSQL alike, would only add its own noise (an fsync) to what encryption adds."""
    with bench_tables():
        save, plain_save = paired_us(
            lambda: BenchEncryptedMessage.objects.create(body=BODY),
            lambda: BenchPlainMessage.objects.create(body=BODY),
            number=300,
        )
        encrypted_pk = BenchEncryptedMessage.objects.values_list("pk", flat=True).first()
        plain_pk = BenchPlainMessage.objects.values_list("pk", flat=True).first()
        read, plain_read = paired_us(
            lambda: BenchEncryptedMessage.objects.get(pk=encrypted_pk).body,
            lambda: BenchPlainMessage.objects.get(pk=plain_pk).body,
            number=500,
        )
    return [
        ("model save, 4 KB body: EncryptedTextField vs TextField", save, plain_save),
        ("model get + read 4 KB body: encrypted vs plain", read, plain_read),
    ]


def encryption_benchmarks() -> list[Row]:
    """Every encryption row: the envelope alone, then through the ORM."""
    return envelope_rows() + model_rows()
