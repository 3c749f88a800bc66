"""A realistic treatment course recorded through the services, and helpers to read reports.

``record_course`` records, for a referral in treatment, the series the summary tests pin:

- PHQ-9: 23 twenty days before infusion 1 (outside the 14-day baseline window), 21 ten days
  before, 19 two days before (the baseline), then 16, 14 (item 9 answered 1: a safety flag), 11,
  9 and 8 on treatment days 2, 4, 7, 11 and 14 (each taken at 09:00, before that day's 10:00
  infusion);
- GAD-7: 14 two days before infusion 1, 6 on day 14;
- a C-SSRS screener (all no) two days before infusion 1;
- six infusions (days 0, 2, 4, 7, 9, 11 at 10:00) of 0.5 mg/kg at 80.0 kg (40.0 mg) over 40 min,
  and one session held on day 6 (pre-dose BP 152/96, above 140/90).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from pypdf import PdfReader

from portal.accounts.models import User
from portal.crypto.storage import open_encrypted_file
from referrals.models import Referral
from reports import services
from reports.models import ProgressReport
from reports.selectors import report_file
from reports.services import AdverseEvent, SessionInput, VitalsReading

INFUSION_DAYS = (0, 2, 4, 7, 9, 11)
HELD_DAY = 6
PHQ9_SERIES = ((-20, 23, 0), (-10, 21, 0), (-2, 19, 0), (2, 16, 0), (4, 14, 1), (7, 11, 0),
               (11, 9, 0), (14, 8, 0))  # fmt: skip
GAD7_SERIES = ((-2, 14), (14, 6))
STANDARD_VITALS = (
    VitalsReading(minute=0, systolic=128, diastolic=82, heart_rate=74, spo2=98),
    VitalsReading(minute=20, systolic=138, diastolic=86, heart_rate=80, spo2=98),
    VitalsReading(minute=40, systolic=142, diastolic=88, heart_rate=84, spo2=96),
    VitalsReading(minute=60, systolic=130, diastolic=82, heart_rate=76, spo2=98),
)


def course_start() -> datetime:
    """Day 0 of the course, 10:00 in the clinic's zone, far enough back that day 14 is past."""
    zone = ZoneInfo(settings.TIME_ZONE)
    today = datetime.now(zone).date() - timedelta(days=30)
    return datetime(today.year, today.month, today.day, 10, 0, tzinfo=zone)


def at(day: int, hour: int = 10, start: datetime | None = None) -> datetime:
    base = start or course_start()
    return (base + timedelta(days=day)).replace(hour=hour)


def phq9_answers(total: int, item9: int = 0) -> list[int]:
    """Nine answers summing to ``total`` with item 9 as given (items 1-8 filled in turn)."""
    remaining = total - item9
    answers = []
    for _ in range(8):
        value = min(3, remaining)
        answers.append(value)
        remaining -= value
    assert remaining == 0, "total too high for the items"
    return [*answers, item9]


def gad7_answers(total: int) -> list[int]:
    answers = []
    remaining = total
    for _ in range(7):
        value = min(2 if total <= 14 else 3, remaining)
        answers.append(value)
        remaining -= value
    assert remaining == 0
    return answers


def session(day: int, start: datetime | None = None, **overrides: object) -> SessionInput:
    values: dict[str, object] = {
        "started_at": at(day, 10, start),
        "weight_kg": Decimal("80.0"),
        "dose_mg_per_kg": Decimal("0.50"),
        "duration_minutes": 40,
        "vitals": STANDARD_VITALS,
        "cadss_peak": 18 if day == 0 else 12,
        "adverse_events": (
            (
                AdverseEvent(
                    term="nausea",
                    severity="mild",
                    onset=30,
                    resolution="resolved by minute 60",
                    action="ondansetron 4 mg IV",
                ),
            )
            if day == 0
            else ()
        ),
    }
    values.update(overrides)
    return SessionInput(**values)  # type: ignore[arg-type]


def held_session(day: int, start: datetime | None = None) -> SessionInput:
    return SessionInput(
        started_at=at(day, 10, start),
        weight_kg=Decimal("80.0"),
        dose_mg_per_kg=None,
        duration_minutes=None,
        status="held",
        status_reason="Pre-dose BP 152/96 above 140/90; rescheduled",
        vitals=(VitalsReading(minute=0, systolic=152, diastolic=96, heart_rate=88, spo2=98),),
    )


def record_course(clinician: User, referral: Referral, start: datetime | None = None) -> None:
    """Record the whole course in time order, as a clinic would (see the module docstring)."""
    events: list[tuple[datetime, str, object]] = []
    for day, total, item9 in PHQ9_SERIES:
        events.append((at(day, 9, start), "phq9", phq9_answers(total, item9)))
    for day, total in GAD7_SERIES:
        events.append((at(day, 9, start), "gad7", gad7_answers(total)))
    events.append((at(-2, 9, start), "cssrs_screen", [False, False, None, None, None, False]))
    for day in INFUSION_DAYS:
        events.append((at(day, 10, start), "session", session(day, start)))
    events.append((at(HELD_DAY, 10, start), "session", held_session(HELD_DAY, start)))
    for moment, kind, payload in sorted(events, key=lambda event: (event[0], event[1])):
        if kind == "session":
            assert isinstance(payload, SessionInput)
            services.infusion_session_record(actor=clinician, referral=referral, data=payload)
        else:
            assert isinstance(payload, list)
            services.assessment_record(
                actor=clinician,
                referral=referral,
                instrument=kind,
                answers=payload,
                taken_at=moment,
            )


def report_pdf_bytes(report: ProgressReport) -> bytes:
    found = report_file(report)
    assert found is not None
    with open_encrypted_file(
        found.name,
        purpose=services.REPORT_FILE_PURPOSE,
        owner_id=found.owner_id,
        expected_sha256=found.sha256,
    ) as stream:
        return stream.read_all()


def streamed(response: Any) -> bytes:
    """The body of a streamed response (the PDF downloads)."""
    return b"".join(response.streaming_content)


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)
