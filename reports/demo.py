"""Demo data for outcomes and reports, for ``manage.py seed_demo`` (``seed_demo(users=...)``).

It builds on the demo referrals (referrals/demo.py, which runs first): on Lakeside's referral in
treatment (Marcus Bell) the demo clinician records what an induction series produces, through the
services as a clinic would: PHQ-9s, GAD-7s and a C-SSRS screener, six infusions with vitals (one
more session held for blood pressure), and requests and signs an interim report with the last
scores (the automatic reports after infusions 3 and 6 stay unsigned, as a clinic may leave
them). Idempotent: nothing is added when that referral already has infusion sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from portal.accounts.models import Membership, Organization, Role, User
from referrals.models import Referral, ReferralStatus
from referrals.selectors import patient_duplicates_for_user
from reports import services
from reports.models import ProgressReport, ReportStatus
from reports.services import AdverseEvent, SessionInput, VitalsReading

DEMO_INTERPRETATION: Final = (
    "Mr Bell responded to the induction series: PHQ-9 fell from 19 to 8 (-58 %) and GAD-7 from "
    "14 to 6, with response first met at infusion 5. He endorsed passive thoughts of death once "
    "(PHQ-9 item 9 = 1 on day 4); a same-day safety assessment found no intent or plan and the "
    "safety plan was reviewed. Infusions were well tolerated: transient nausea at the first "
    "infusion, one session held for a pre-dose BP of 152/96.\n"
    "Recommendations: maintenance infusions every 4 weeks, reassess at each visit with PHQ-9; "
    "continue bupropion XL 300 mg; please keep his psychotherapy appointments in place."
)

_PHQ9: Final = ((-2, 19, 0), (2, 16, 0), (4, 14, 1), (7, 11, 0), (11, 9, 0), (14, 8, 0))
_GAD7: Final = ((-2, [2, 2, 2, 2, 2, 2, 2]), (14, [1, 1, 1, 1, 1, 1, 0]))
_INFUSION_DAYS: Final = (0, 2, 4, 7, 9, 11)
_HELD_DAY: Final = 6


def _phq9(total: int, item9: int) -> list[int]:
    remaining = total - item9
    answers = []
    for _ in range(8):
        answers.append(min(3, remaining))
        remaining -= answers[-1]
    return [*answers, item9]


def _vitals(peak_systolic: int) -> tuple[VitalsReading, ...]:
    return (
        VitalsReading(minute=0, systolic=128, diastolic=82, heart_rate=74, spo2=98),
        VitalsReading(minute=15, systolic=136, diastolic=85, heart_rate=79, spo2=98),
        VitalsReading(minute=30, systolic=peak_systolic, diastolic=89, heart_rate=84, spo2=97),
        VitalsReading(minute=45, systolic=138, diastolic=86, heart_rate=80, spo2=97),
        VitalsReading(minute=60, systolic=130, diastolic=82, heart_rate=75, spo2=98),
    )


def _at(day0: datetime, day: int, hour: int) -> datetime:
    return (day0 + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0)


DEMO_PATIENT: Final = ("Marcus", "Bell", date(1972, 1, 16))
LAKESIDE: Final = "Lakeside Family Medicine"


def _member(organization: Organization, role: str) -> User | None:
    membership = (
        Membership.objects.filter(
            organization=organization, role=role, is_active=True, user__is_active=True
        )
        .select_related("user")
        .order_by("pk")
        .first()
    )
    return membership.user if membership is not None else None


def _demo_referral(provider: User, practice: Organization) -> Referral | None:
    given_name, family_name, birth_date = DEMO_PATIENT
    patients = patient_duplicates_for_user(
        user=provider,
        practice=practice,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
    )
    return (
        Referral.objects.filter(patient__in=patients, status=ReferralStatus.IN_TREATMENT)
        .select_related("clinic")
        .order_by("created_at")
        .first()
    )


def record_demo_course(
    *, referral: Referral, clinician: User, now: datetime | None = None
) -> ProgressReport | None:
    """Record the course on ``referral`` (in treatment), then request, generate and sign an
    interim report; returns the signed report."""
    moment = now or timezone.now()
    day0 = _at(timezone.localtime(moment) - timedelta(days=35), 0, 10)
    base_session = SessionInput(
        started_at=day0,
        weight_kg=Decimal("84.0"),
        dose_mg_per_kg=Decimal("0.50"),
        duration_minutes=40,
        vitals=_vitals(142),
        cadss_peak=14,
    )
    steps: list[tuple[datetime, str, Any]] = []
    for day, total, item9 in _PHQ9:
        steps.append((_at(day0, day, 9), "phq9", _phq9(total, item9)))
    for day, answers in _GAD7:
        steps.append((_at(day0, day, 9), "gad7", answers))
    steps.append((_at(day0, -2, 9), "cssrs_screen", [False, False, None, None, None, False]))
    for number, day in enumerate(_INFUSION_DAYS, start=1):
        session = replace(
            base_session,
            started_at=_at(day0, day, 10),
            vitals=_vitals(146 if number == 1 else 140 - number),
            cadss_peak=22 - 2 * number,
            adverse_events=(
                (
                    AdverseEvent(
                        term="nausea",
                        severity="mild",
                        onset=25,
                        resolution="resolved by minute 50",
                        action="ondansetron 4 mg IV",
                    ),
                )
                if number == 1
                else ()
            ),
        )
        steps.append((session.started_at, "session", session))
    held = SessionInput(
        started_at=_at(day0, _HELD_DAY, 10),
        weight_kg=Decimal("84.0"),
        dose_mg_per_kg=None,
        duration_minutes=None,
        status="held",
        status_reason="Pre-dose BP 152/96 above 140/90 after a missed dose of lisinopril; "
        "rescheduled for the next day",
        vitals=(VitalsReading(minute=0, systolic=152, diastolic=96, heart_rate=86, spo2=98),),
    )
    steps.append((held.started_at, "session", held))
    for moment_taken, kind, payload in sorted(steps, key=lambda step: (step[0], step[1])):
        if kind == "session":
            services.infusion_session_record(actor=clinician, referral=referral, data=payload)
        else:
            services.assessment_record(
                actor=clinician,
                referral=referral,
                instrument=kind,
                answers=payload,
                taken_at=moment_taken,
            )
    # The reports requested after infusions 3 and 6 are generated now (a worker picking their
    # messages up later finds them ready); the clinician then requests one with the last scores
    # and signs it.
    for automatic in ProgressReport.objects.filter(referral=referral).order_by("version"):
        services.report_generate(report_id=automatic.public_id)
    requested = services.report_request(actor=clinician, referral=referral, kind="interim")
    generated = services.report_generate(report_id=requested.public_id)
    if generated is None or generated.status != ReportStatus.READY:
        return None
    return services.report_sign(
        actor=clinician, report=generated, interpretation=DEMO_INTERPRETATION
    )


def seed_demo(*, users: Mapping[str, User]) -> str:
    """Add the demo course unless it is there; returns a line for the command output."""
    clinic = Organization.objects.filter(kind=Organization.Kind.CLINIC).order_by("pk").first()
    practice = Organization.objects.filter(name=LAKESIDE, kind=Organization.Kind.PRACTICE).first()
    if clinic is None or practice is None or not users:
        return "Demo outcomes: skipped (no demo clinic or practice)."
    provider = _member(practice, Role.PROVIDER)
    clinician = _member(clinic, Role.CLINICIAN)
    referral = _demo_referral(provider, practice) if provider is not None else None
    if referral is None or clinician is None:
        return "Demo outcomes: skipped (no demo referral in treatment)."
    if referral.infusion_sessions.exists():
        return "Demo outcomes: already present."
    with transaction.atomic():
        report = record_demo_course(referral=referral, clinician=clinician)
    version = f" (version {report.version}, signed)" if report is not None else ""
    return f"Demo outcomes: six infusions and a progress report{version} on {referral.number}."
