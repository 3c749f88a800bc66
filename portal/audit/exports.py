"""The audit trail as CSV, streamed: an export of the whole trail never sits in memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from portal.accounts.models import User
from portal.audit.models import AuditEvent
from portal.audit.selectors import AuditEventFilters
from portal.audit.services import audit_export_record

CSV_COLUMNS = (
    "sequence",
    "occurred_at",
    "actor",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "request_id",
    "ip",
    "details",
    "sealed",
)
# A cell starting with one of these is a formula to a spreadsheet; a leading apostrophe keeps it
# text (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _row(event: AuditEvent) -> list[str]:
    return [
        _cell(value)
        for value in (
            event.sequence,
            event.occurred_at.isoformat(),
            event.actor.public_id if event.actor is not None else "",
            event.actor_label,
            event.action,
            event.object_type,
            event.object_id,
            event.outcome,
            event.request_id,
            event.ip,
            json.dumps(event.details, sort_keys=True),
            "yes" if hasattr(event, "seal") else "no",
        )
    ]


def _lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        yield writer.writerow(_row(event))


def audit_events_csv_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_lines(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
    response["Cache-Control"] = "no-store"
    return response


def audit_events_csv_export(
    *, actor: User, filters: AuditEventFilters, events: QuerySet[AuditEvent]
) -> StreamingHttpResponse:
    """Record the export (committed before the first row goes out), then stream the trail as it
    stood: events up to the export's own, which therefore is not in the file."""
    record = audit_export_record(actor=actor, filters=filters.as_details(), rows=events.count())
    return audit_events_csv_response(events.filter(sequence__lt=record.sequence))
