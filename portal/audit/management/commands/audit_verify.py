"""``python manage.py audit_verify``: check the audit chain; exit 1 on any problem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.audit.verification import audit_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain, name the first altered, removed or reordered event and "
        "report events left unsealed; exits non-zero on any failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--unsealed-after",
            type=int,
            default=None,
            help="Seconds after which an unsealed event is reported (default: the setting "
            "AUDIT_UNSEALED_ALERT_SECONDS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["unsealed_after"]
        report = audit_verify(
            unsealed_after=timedelta(seconds=seconds) if seconds is not None else None
        )
        self.stdout.write(f"Checked {report.checked} sealed events.")
        problems: list[str] = []
        if report.failure is not None:
            problems.append(f"Chain broken ({report.failure.kind}): {report.failure.message}")
        if report.unsealed_count:
            listed = ", ".join(str(sequence) for sequence in report.unsealed_sequences)
            more = report.unsealed_count - len(report.unsealed_sequences)
            problems.append(
                f"{report.unsealed_count} events left unsealed: {listed}"
                + (f" and {more} more" if more > 0 else "")
                + ". Is the sealer running?"
            )
        if problems:
            raise CommandError("\n".join(problems))
        self.stdout.write(self.style.SUCCESS("The audit chain is intact."))
