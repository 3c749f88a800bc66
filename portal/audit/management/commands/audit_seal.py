"""``python manage.py audit_seal``: link committed audit events into the chain now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.audit.sealing import audit_seal


class Command(BaseCommand):
    help = "Link committed, unsealed audit events into the HMAC chain (the beat task does this)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Events linked per transaction."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_seal(batch_size=options["batch_size"])
        if result.busy:
            self.stdout.write("Another sealer is running; nothing done.")
            return
        self.stdout.write(
            f"Sealed {result.sealed} events ({result.late} late), "
            f"stepped over {result.gaps} rolled-back gaps."
        )
        if result.waiting_at is not None:
            self.stdout.write(
                f"Waiting on sequence {result.waiting_at}: it may belong to a transaction still "
                "in flight; it is stepped over once the grace period has passed."
            )
