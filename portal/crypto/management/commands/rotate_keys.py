"""``python manage.py rotate_keys``: re-wrap every data key under the active key-encryption key.

    rotate_keys [--batch-size N] [--dry-run]
    rotate_keys --reencrypt referrals.Patient[:<public_id>,<public_id>] [--reencrypt ...]

Without ``--reencrypt`` it walks every encrypted field of every installed app and every
registered encrypted file, re-wrapping the DEKs not yet under ``PORTAL_ENCRYPTION_ACTIVE_KEY``,
and prints a line per batch. Interrupted, it is simply run again: it continues with what is left.
It exits 1 if anything could not be re-wrapped (the security log names each value). When it
reports nothing left under an old key id, that id can be removed from ``PORTAL_ENCRYPTION_KEYS``.

``--reencrypt`` also gives the chosen records fresh data keys (decrypt, encrypt again), e.g. for
records whose DEK may have been exposed; ``crypto.EncryptedFile`` re-encrypts files.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.crypto.keys import keyring
from portal.crypto.rotation import (
    BatchReport,
    parse_selection,
    reencrypt_records,
    remaining_counts,
    rewrap_all,
)
from portal.crypto.storage import orphaned_files


class Command(BaseCommand):
    help = (
        "Re-wrap every data key (encrypted fields and files) under the active key-encryption "
        "key, in batches; rerun to resume. --reencrypt also replaces the data keys of chosen "
        "records."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows per batch (one transaction each)."
        )
        parser.add_argument(
            "--reencrypt",
            action="append",
            default=[],
            metavar="MODEL_LABEL[:public_id,...]",
            help="Also give these records fresh data keys (repeatable).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count and check what would be done; write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size: int = options["batch_size"]
        dry_run: bool = options["dry_run"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            selections = [parse_selection(spec) for spec in options["reencrypt"]]
        except ValueError as error:
            raise CommandError(f"--reencrypt: {error}") from None
        ring = keyring()
        retired = [key_id for key_id in ring.key_ids if key_id != ring.active_key_id]
        self.stdout.write(
            f"Active key: {ring.active_key_id}. Other keys in the keyring: "
            f"{', '.join(retired) or 'none'}.{' (dry run: nothing is written)' if dry_run else ''}"
        )

        reports = rewrap_all(
            batch_size=batch_size, dry_run=dry_run, on_start=self._start, on_batch=self._batch
        )
        for selection in selections:
            self._start(f"{selection.model._meta.label_lower} (re-encrypt)", None)
            reports.append(
                reencrypt_records(
                    selection, batch_size=batch_size, dry_run=dry_run, on_batch=self._batch
                )
            )

        changed = sum(report.changed for report in reports)
        failed = sum(report.failed for report in reports)
        verb = "would change" if dry_run else "changed"
        self.stdout.write(f"Done: {changed} {verb}, {failed} failed.")
        orphans = orphaned_files()
        if orphans:
            self.stdout.write(
                f"{len(orphans)} encrypted files on disk have no registry row (left by "
                "rolled-back writes; unreferenced, not rotated)."
            )
        if failed:
            raise CommandError(
                f"{failed} values or files could not be processed (see the security log); "
                "keep the old keys until they are resolved."
            )
        if dry_run:
            return
        remaining = remaining_counts()
        if remaining:
            left = ", ".join(f"{label}: {count}" for label, count in remaining.items())
            raise CommandError(f"Still not under the active key (written meanwhile?): {left}")
        if retired:
            self.stdout.write(
                f"Everything is under {ring.active_key_id}: {', '.join(retired)} can be removed "
                "from PORTAL_ENCRYPTION_KEYS."
            )

    def _start(self, target: str, total: int | None) -> None:
        suffix = "" if total is None else f": {total} to process"
        self.stdout.write(f"{target}{suffix}")

    def _batch(self, report: BatchReport) -> None:
        self.stdout.write(
            f"  batch {report.batch}: {report.done}/{report.total} done, "
            f"{report.changed} changed, {report.skipped} skipped, {report.failed} failed"
        )
