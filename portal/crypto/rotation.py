"""Key rotation: re-wrap every data key under the active KEK, and re-encrypt chosen records.

Used by ``python manage.py rotate_keys``. The work is found, not listed: every concrete model
field that is an ``EncryptedField`` in every installed app, plus every file in the
``crypto.EncryptedFile`` registry.

Re-wrapping (``rewrap_all``) only replaces the wrapped DEK inside each token or file header; the
ciphertext itself is carried over. It is

- batched: rows are read in primary-key order, ``batch_size`` at a time, each batch written in
  one transaction;
- resumable and idempotent: only rows whose token does not start with ``v1.<active id>.`` are
  selected, so a rerun after an interruption picks up exactly what is left, and a finished
  rotation rerun does nothing;
- safe beside live traffic: each row is updated with its old token in the ``WHERE`` clause
  (compare-and-set); a row rewritten by the application in the meantime (already under the
  active key) is left alone. The raw update does not touch ``updated_at``.

A value that cannot be unwrapped (tampered, moved, or under a KEK missing from the keyring) is
counted as failed, recorded as a security event, and left as it is; the command then exits
non-zero and the old KEK must stay until it is resolved.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from django.apps import apps
from django.db import connections, models, router, transaction
from django.db.models.functions import Substr

from portal.crypto.envelope import reencrypt_value, rewrap_value
from portal.crypto.errors import DecryptionError
from portal.crypto.fields import EncryptedField
from portal.crypto.keyring import Keyring
from portal.crypto.keys import keyring
from portal.crypto.models import EncryptedFile
from portal.crypto.storage import (
    file_associated_data,
    reencrypt_stored_file,
    rewrap_stored_file,
    stored_file_path,
)
from portal.crypto.streams import read_stream_header, rewrap_stream_header
from portal.crypto.values import report_decryption_failure

__all__ = [
    "FILES_TARGET",
    "BatchReport",
    "Selection",
    "Target",
    "encrypted_fields",
    "parse_selection",
    "reencrypt_records",
    "remaining_counts",
    "rewrap_all",
]

FILES_TARGET = "files (crypto.EncryptedFile)"
logger = logging.getLogger(__name__)
_PREFIX_ANNOTATION = "_rotation_token_prefix"


@dataclass
class BatchReport:
    """Progress of one target (a model field, or the files): cumulative after each batch."""

    target: str
    total: int
    batch: int = 0
    done: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Target:
    model: type[models.Model]
    field: EncryptedField

    @property
    def label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.field.attname}"


@dataclass
class Selection:
    """``--reencrypt MODEL_LABEL[:public_id,...]``: one model, all rows or the listed ones."""

    model: type[models.Model]
    public_ids: list[uuid.UUID] = field(default_factory=list)


def encrypted_fields() -> list[Target]:
    """Every encrypted column: concrete (non-proxy) models of every installed app."""
    targets = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for model_field in model._meta.local_concrete_fields:
            if isinstance(model_field, EncryptedField):
                targets.append(Target(model, model_field))
    return targets


def parse_selection(spec: str) -> Selection:
    """Parse ``app_label.ModelName`` or ``app_label.ModelName:uuid,uuid``; ValueError if bad."""
    label, separator, ids = spec.partition(":")
    try:
        model = apps.get_model(label.strip())
    except (LookupError, ValueError):
        raise ValueError(f"unknown model {label.strip()!r} (use app_label.ModelName)") from None
    if model is not EncryptedFile and not any(t.model is model for t in encrypted_fields()):
        raise ValueError(f"{model._meta.label} has no encrypted fields")
    public_ids = []
    for raw in filter(None, (part.strip() for part in ids.split(","))):
        try:
            public_ids.append(uuid.UUID(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not a public id (UUID)") from None
    if separator and not public_ids:
        raise ValueError("no public ids after ':'")
    return Selection(model=model, public_ids=public_ids)


def _active_prefix(ring: Keyring) -> str:
    return f"v1.{ring.active_key_id}."


def _pending(target: Target, ring: Keyring) -> models.QuerySet[Any]:
    """Rows of ``target`` whose token is not (yet) under the active KEK."""
    prefix = _active_prefix(ring)
    alias = router.db_for_write(target.model)
    return (
        target.model._base_manager.using(alias)
        .filter(**{f"{target.field.attname}__isnull": False})
        .annotate(
            **{
                _PREFIX_ANNOTATION: Substr(
                    target.field.attname, 1, len(prefix), output_field=models.TextField()
                )
            }
        )
        .exclude(**{_PREFIX_ANNOTATION: prefix})
    )


def _compare_and_set(target: Target, pk: Any, old: str, new: str) -> bool:
    """``UPDATE ... SET col = new WHERE pk = pk AND col = old``; True if the row changed.

    Raw SQL on purpose: the ORM would run ``pre_save`` (and bump ``updated_at``), and the
    encrypted field refuses equality look-ups on its column.
    """
    alias = router.db_for_write(target.model)
    connection = connections[alias]
    quote = connection.ops.quote_name
    opts = target.model._meta
    pk_field = opts.pk
    assert pk_field is not None  # noqa: S101 - every concrete model has one  # nosec B101
    sql = (
        f"UPDATE {quote(opts.db_table)} SET {quote(target.field.column)} = %s "  # noqa: S608  # nosec B608
        f"WHERE {quote(pk_field.column)} = %s AND {quote(target.field.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [new, pk_field.get_db_prep_value(pk, connection), old])
        return bool(cursor.rowcount == 1)


def _batches(
    queryset: models.QuerySet[Any], fields: Sequence[str], batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Keyset pagination by primary key: each query starts after the last row seen."""
    last_pk: Any = None
    while True:
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        rows = list(page.order_by("pk").values_list("pk", *fields)[:batch_size])
        if not rows:
            return
        yield rows
        last_pk = rows[-1][0]


def _rewrap_field(
    target: Target,
    ring: Keyring,
    *,
    batch_size: int,
    dry_run: bool,
    on_batch: Callable[[BatchReport], None],
) -> BatchReport:
    queryset = _pending(target, ring)
    report = BatchReport(target=target.label, total=queryset.count())
    alias = router.db_for_write(target.model)
    for rows in _batches(queryset, ("public_id", target.field.attname), batch_size):
        report.batch += 1
        with transaction.atomic(using=alias):
            for pk, public_id, token in rows:
                row = str(public_id)
                try:
                    new = rewrap_value(
                        ring, str(token), associated_data=target.field.associated_data_for(row)
                    )
                except DecryptionError as error:
                    report.failed += 1
                    report_decryption_failure(error, label=target.field.label_for(row))
                    continue
                if dry_run or _compare_and_set(target, pk, str(token), new):
                    report.changed += 1
                else:
                    report.skipped += 1
        report.done += len(rows)
        on_batch(report)
    return report


def _rewrap_files(
    ring: Keyring, *, batch_size: int, dry_run: bool, on_batch: Callable[[BatchReport], None]
) -> BatchReport:
    queryset = EncryptedFile.objects.exclude(key_id=ring.active_key_id)
    report = BatchReport(target=FILES_TARGET, total=queryset.count())
    last_pk: int | None = None
    while True:
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        records = list(page.order_by("pk")[:batch_size])
        if not records:
            return report
        report.batch += 1
        for record in records:
            try:
                if dry_run:
                    _check_file_rewrap(record, ring)
                    changed = True
                else:
                    changed = rewrap_stored_file(record)
            except DecryptionError as error:
                report.failed += 1
                report_decryption_failure(error, label=f"file:{record.name}")
                continue
            except FileNotFoundError:
                report.failed += 1
                logger.error("rotate_keys: encrypted file %s is missing", record.name)
                continue
            if changed:
                report.changed += 1
            else:
                report.skipped += 1
        report.done += len(records)
        last_pk = records[-1].pk
        on_batch(report)


def _check_file_rewrap(record: EncryptedFile, ring: Keyring) -> None:
    """Dry run: unwrap the file's DEK (proving it can be re-wrapped) without writing."""
    with stored_file_path(record.name).open("rb") as source:
        header = read_stream_header(cast(BinaryIO, source))
    rewrap_stream_header(
        ring, header, associated_data=file_associated_data(record.name, record.owner_id)
    )


def rewrap_all(
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    on_start: Callable[[str, int], None] = lambda target, total: None,
    on_batch: Callable[[BatchReport], None] = lambda report: None,
) -> list[BatchReport]:
    """Re-wrap every DEK not under the active KEK: every encrypted field, then every file."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ring = keyring()
    reports = []
    for target in encrypted_fields():
        reports.append(
            _rewrap_field(
                target,
                ring,
                batch_size=batch_size,
                dry_run=dry_run,
                on_batch=_announcing(on_start, on_batch),
            )
        )
    reports.append(
        _rewrap_files(
            ring, batch_size=batch_size, dry_run=dry_run, on_batch=_announcing(on_start, on_batch)
        )
    )
    return reports


def _announcing(
    on_start: Callable[[str, int], None], on_batch: Callable[[BatchReport], None]
) -> Callable[[BatchReport], None]:
    """Calls ``on_start`` before the first batch of a target, then ``on_batch`` every time."""
    started: set[str] = set()

    def callback(report: BatchReport) -> None:
        if report.target not in started:
            started.add(report.target)
            on_start(report.target, report.total)
        on_batch(report)

    return callback


def remaining_counts() -> dict[str, int]:
    """Values and files per target still not under the active KEK (only the non-zero ones)."""
    ring = keyring()
    counts = {target.label: _pending(target, ring).count() for target in encrypted_fields()}
    counts[FILES_TARGET] = EncryptedFile.objects.exclude(key_id=ring.active_key_id).count()
    return {label: count for label, count in counts.items() if count}


def reencrypt_records(
    selection: Selection,
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    on_batch: Callable[[BatchReport], None] = lambda report: None,
) -> BatchReport:
    """Give the selected rows fresh DEKs (decrypt and encrypt again under the active KEK).

    For ``crypto.EncryptedFile`` the files themselves are re-encrypted. Rerunning repeats the
    work (each run replaces the keys again); nothing is lost by that.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ring = keyring()
    model = selection.model
    queryset = model._base_manager.all()
    if selection.public_ids:
        queryset = queryset.filter(public_id__in=selection.public_ids)
    if model is EncryptedFile:
        return _reencrypt_files(
            cast("models.QuerySet[EncryptedFile]", queryset),
            batch_size=batch_size,
            dry_run=dry_run,
            on_batch=on_batch,
        )
    targets = [t for t in encrypted_fields() if t.model is model]
    report = BatchReport(target=f"{model._meta.label_lower} (re-encrypt)", total=queryset.count())
    attnames = [t.field.attname for t in targets]
    alias = router.db_for_write(model)
    for rows in _batches(queryset, ("public_id", *attnames), batch_size):
        report.batch += 1
        with transaction.atomic(using=alias):
            for pk, public_id, *tokens in rows:
                row = str(public_id)
                for target, token in zip(targets, tokens, strict=True):
                    if token is None:
                        continue
                    try:
                        new = reencrypt_value(
                            ring,
                            str(token),
                            associated_data=target.field.associated_data_for(row),
                        )
                    except DecryptionError as error:
                        report.failed += 1
                        report_decryption_failure(error, label=target.field.label_for(row))
                        continue
                    if dry_run or _compare_and_set(target, pk, str(token), new):
                        report.changed += 1
                    else:
                        report.skipped += 1
        report.done += len(rows)
        on_batch(report)
    return report


def _reencrypt_files(
    queryset: models.QuerySet[EncryptedFile],
    *,
    batch_size: int,
    dry_run: bool,
    on_batch: Callable[[BatchReport], None],
) -> BatchReport:
    report = BatchReport(target=f"{FILES_TARGET} (re-encrypt)", total=queryset.count())
    records: Iterable[EncryptedFile] = queryset.order_by("pk").iterator(chunk_size=batch_size)
    batch: list[EncryptedFile] = []
    for record in records:
        batch.append(record)
        if len(batch) == batch_size:
            _reencrypt_file_batch(batch, report, dry_run=dry_run)
            on_batch(report)
            batch = []
    if batch:
        _reencrypt_file_batch(batch, report, dry_run=dry_run)
        on_batch(report)
    return report


def _reencrypt_file_batch(
    batch: list[EncryptedFile], report: BatchReport, *, dry_run: bool
) -> None:
    report.batch += 1
    for record in batch:
        try:
            if dry_run:
                _check_file_rewrap(record, keyring())
            else:
                reencrypt_stored_file(record)
        except DecryptionError as error:
            report.failed += 1
            if dry_run:  # reencrypt_stored_file records the event itself
                report_decryption_failure(error, label=f"file:{record.name}")
            continue
        except FileNotFoundError:
            report.failed += 1
            logger.error("rotate_keys: encrypted file %s is missing", record.name)
            continue
        report.changed += 1
    report.done += len(batch)
