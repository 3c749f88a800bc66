"""Every write to outcomes and progress reports: one function per action, each in one transaction.

Errors (mapped by the API's exception handler): ``NotFound`` (404) when the referral or report is
not visible to the actor (the denial is audited); ``Forbidden`` (403) for a party who never takes
this action; ``Conflict`` (409) for the wrong referral or report state; ``ServiceError`` (400)
for bad input, with ``fields`` naming what is wrong (answers name the item).

Report generation (``report_generate``, run by the ``generate_progress_report`` task) is
idempotent by report id. It claims the report (``queued`` -> ``generating``) in one short
transaction, then builds and stores the PDF in a second one that holds the report's row lock
until the report is ``ready``. A second run (a redelivered message, a re-drive) waits for that
lock and finds the report ready; a worker killed mid-report loses its transaction (and the lock)
with its connection, so the next run finds the report still ``generating`` and takes it over.
Either way one PDF is stored and the report is ready once.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any, Final
from zoneinfo import ZoneInfo

from celery.exceptions import Retry
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from portal.accounts.models import Organization, Role, User
from portal.accounts.selectors import clinic_staff_for_clinic
from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.services import audit_denied, audit_record, security_event_record
from portal.clinical.scoring import ScoringError, score
from portal.crypto.storage import store_encrypted_file, stored_file_path
from portal.notifications.services import notify
from referrals import services as referral_services
from referrals.models import EventKind, Referral, ReferralStatus
from referrals.permissions import access_for, can_view_referral, referral_parties

# Imported as a module: tasks.py imports this module back (see portal.notifications).
from reports import permissions, tasks
from reports.content import (
    TEMPLATE_VERSION,
    build_report_input,
    build_snapshot,
    compute_summary,
    snapshot_hash,
)
from reports.models import (
    Assessment,
    InfusionSession,
    Instrument,
    OutcomeSettings,
    ProgressReport,
    ReportKind,
    ReportStatus,
    ReportTrigger,
    Route,
    SessionStatus,
)
from reports.rendering import Interpretation, render_pdf

logger = logging.getLogger(__name__)

REPORT_FILE_PURPOSE: Final = "progress-report"
#: Progress reports are made automatically after these infusions (CLINICAL.md, the issue).
AUTOMATIC_REPORT_AFTER: Final = frozenset({3, 6})
#: A run that finds the report claimed this many times gives up (a report that kills its worker).
MAX_GENERATION_ATTEMPTS: Final = 5
#: A queued report not picked up for this long is enqueued again (the broker lost it, or was down).
REDRIVE_QUEUED_AFTER: Final = timedelta(minutes=2)
#: Longer than the task's hard time limit: a report still generating after this lost its worker.
GENERATING_STALE_AFTER: Final = timedelta(minutes=10)
REDRIVE_BATCH_SIZE: Final = 200
# Publishing gives up quickly when the broker is down: the queued row is the safety net.
ENQUEUE_RETRY_POLICY: Final = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Recording times may run a little ahead of the server clock (a device clock), never further.
CLOCK_SKEW: Final = timedelta(minutes=5)

# Ranges the API, the portal forms and this module share.
WEIGHT_KG: Final = (Decimal("20"), Decimal("350"))
DOSE_MG_PER_KG: Final = (Decimal("0.05"), Decimal("2.00"))
DURATION_MINUTES: Final = (1, 480)
VITALS_RANGES: Final[dict[str, tuple[int, int]]] = {
    "minute": (0, 600),
    "systolic": (50, 300),
    "diastolic": (20, 200),
    "heart_rate": (20, 250),
    "spo2": (50, 100),
}
MAX_VITALS: Final = 60
CADSS_PEAK: Final = (0, 92)
SEVERITIES: Final = ("mild", "moderate", "severe")
MAX_ADVERSE_EVENTS: Final = 20
ONSET_MINUTES: Final = (0, 1440)
TERM_MAX: Final = 100
SHORT_TEXT_MAX: Final = 200
REASON_MAX: Final = 1000
INTERPRETATION_MAX: Final = 10000

OUTCOMES_PATH: Final = "/reports/referrals/{public_id}/"
REPORT_PATH: Final = "/reports/{public_id}/"


def outcomes_path(referral: Referral) -> str:
    return OUTCOMES_PATH.format(public_id=referral.public_id)


def report_path(report: ProgressReport) -> str:
    return REPORT_PATH.format(public_id=report.public_id)


def outcome_settings_for(clinic: Organization) -> OutcomeSettings:
    """The clinic's outcome settings, or unsaved defaults when it has no row."""
    found = OutcomeSettings.objects.filter(clinic=clinic).first()
    return found if found is not None else OutcomeSettings(clinic=clinic)


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VitalsReading:
    minute: int
    systolic: int
    diastolic: int
    heart_rate: int
    spo2: int


@dataclass(frozen=True)
class AdverseEvent:
    term: str
    severity: str
    action: str
    onset: int | None = None
    resolution: str = ""


@dataclass(frozen=True)
class SessionInput:
    """One session as the clinician records it (API body or portal form)."""

    started_at: datetime
    weight_kg: Decimal
    dose_mg_per_kg: Decimal | None
    duration_minutes: int | None
    route: str = Route.IV
    status: str = SessionStatus.COMPLETED
    status_reason: str = ""
    vitals: Sequence[VitalsReading] = field(default_factory=tuple)
    cadss_peak: int | None = None
    adverse_events: Sequence[AdverseEvent] = field(default_factory=tuple)
    dose_change_reason: str = ""


def _invalid(fields: Mapping[str, str], detail: str = "Invalid input.") -> ServiceError:
    return ServiceError(detail, code="invalid", extra={"fields": dict(fields)})


def _in_range(value: Any, bounds: tuple[Any, Any]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _check_moment(moment: datetime, name: str, problems: dict[str, str]) -> None:
    if not isinstance(moment, datetime) or timezone.is_naive(moment):
        problems[name] = "A date and time with a time zone is required."
    elif moment > timezone.now() + CLOCK_SKEW:
        problems[name] = "Must not be in the future."


def session_problems(data: SessionInput) -> dict[str, str]:
    """What is wrong with a session record: ``{"field.path": message}`` (empty when fine)."""
    problems: dict[str, str] = {}
    _check_moment(data.started_at, "started_at", problems)
    if data.status not in SessionStatus.values:
        problems["status"] = f"One of: {', '.join(SessionStatus.values)}."
    if data.route not in Route.values:
        problems["route"] = f"One of: {', '.join(Route.values)}."
    if not _in_range(data.weight_kg, WEIGHT_KG):
        problems["weight_kg"] = f"Between {WEIGHT_KG[0]} and {WEIGHT_KG[1]} kg."
    given = data.status != SessionStatus.HELD
    unless_held = " (required unless the session was held)." if given else "."
    dose_needed = data.dose_mg_per_kg is not None or given
    if dose_needed and not _in_range(data.dose_mg_per_kg, DOSE_MG_PER_KG):
        problems["dose_mg_per_kg"] = (
            f"Between {DOSE_MG_PER_KG[0]} and {DOSE_MG_PER_KG[1]} mg/kg{unless_held}"
        )
    duration_needed = data.duration_minutes is not None or given
    if duration_needed and not _in_range(data.duration_minutes, DURATION_MINUTES):
        problems["duration_minutes"] = (
            f"Between {DURATION_MINUTES[0]} and {DURATION_MINUTES[1]} minutes{unless_held}"
        )
    explained = bool(data.status_reason.strip())
    if data.status in (SessionStatus.HELD, SessionStatus.STOPPED) and not explained:
        problems["status_reason"] = "Required when the session was held or stopped early."
    if len(data.status_reason) > REASON_MAX:
        problems["status_reason"] = f"At most {REASON_MAX} characters."
    if len(data.dose_change_reason) > REASON_MAX:
        problems["dose_change_reason"] = f"At most {REASON_MAX} characters."
    if data.cadss_peak is not None and not _in_range(data.cadss_peak, CADSS_PEAK):
        problems["cadss_peak"] = f"Between {CADSS_PEAK[0]} and {CADSS_PEAK[1]}."
    if len(data.vitals) > MAX_VITALS:
        problems["vitals"] = f"At most {MAX_VITALS} readings."
    minutes: set[int] = set()
    for index, reading in enumerate(data.vitals):
        for name, bounds in VITALS_RANGES.items():
            if not _in_range(getattr(reading, name), bounds):
                problems[f"vitals.{index}.{name}"] = f"Between {bounds[0]} and {bounds[1]}."
        if reading.diastolic >= reading.systolic:
            problems[f"vitals.{index}.diastolic"] = "Must be lower than the systolic pressure."
        if reading.minute in minutes:
            problems[f"vitals.{index}.minute"] = "Another reading has the same minute."
        minutes.add(reading.minute)
    if len(data.adverse_events) > MAX_ADVERSE_EVENTS:
        problems["adverse_events"] = f"At most {MAX_ADVERSE_EVENTS} events."
    for index, event in enumerate(data.adverse_events):
        if not event.term.strip() or len(event.term) > TERM_MAX:
            problems[f"adverse_events.{index}.term"] = f"Required, at most {TERM_MAX} characters."
        if event.severity not in SEVERITIES:
            problems[f"adverse_events.{index}.severity"] = f"One of: {', '.join(SEVERITIES)}."
        if not event.action.strip() or len(event.action) > SHORT_TEXT_MAX:
            problems[f"adverse_events.{index}.action"] = (
                f'Required (write "none" if none), at most {SHORT_TEXT_MAX} characters.'
            )
        if event.onset is not None and not _in_range(event.onset, ONSET_MINUTES):
            problems[f"adverse_events.{index}.onset"] = (
                f"Minutes after the start, {ONSET_MINUTES[0]} to {ONSET_MINUTES[1]}."
            )
        if len(event.resolution) > SHORT_TEXT_MAX:
            problems[f"adverse_events.{index}.resolution"] = f"At most {SHORT_TEXT_MAX} characters."
    return problems


# --- access ------------------------------------------------------------------------------------


def _lock_referral(referral: Referral) -> Referral:
    locked = (
        Referral.objects.select_for_update(of=("self",))
        .select_related("practice", "clinic", "provider", "created_by", "patient")
        .filter(pk=referral.pk)
        .first()
    )
    if locked is None:
        raise NotFound()
    return locked


class _AfterRollback(Exception):
    """Raised inside a service's transaction so that it rolls back; ``record`` (the audit of a
    denial, a security event) then runs outside it, so it is kept, and ``error`` is raised."""

    def __init__(self, error: ServiceError, record: Callable[[], None]) -> None:
        super().__init__(error.detail)
        self.error = error
        self.record = record


@contextmanager
def _atomic() -> Iterator[None]:
    try:
        with transaction.atomic():
            yield
    except _AfterRollback as pending:
        pending.record()
        raise pending.error from None


def _deny(
    error: ServiceError, actor: User, action: str, object_type: str, object_id: uuid.UUID
) -> _AfterRollback:
    return _AfterRollback(
        error,
        partial(
            audit_denied, actor=actor, action=action, object_type=object_type, object_id=object_id
        ),
    )


def _referral_parties(actor: User, referral: Referral, action: str) -> frozenset[str]:
    """The actor's parties to the referral; NotFound (audited) when it is not visible to them."""
    access = access_for(actor)
    if not can_view_referral(access, referral):
        raise _deny(NotFound(), actor, action, "referral", referral.public_id)
    return referral_parties(access, referral)


def _require(
    allowed: bool, actor: User, action: str, target: Referral | ProgressReport, message: str
) -> None:
    """Forbidden (403, audited) for a party who never takes this action."""
    if not allowed:
        object_type = "referral" if isinstance(target, Referral) else "progress_report"
        raise _deny(Forbidden(message), actor, action, object_type, target.public_id)


def _require_state(referral: Referral, states: frozenset[str], message: str) -> None:
    if referral.status not in states:
        raise Conflict(message, code="invalid_state", extra={"status": referral.status})


def _lock_report(report: ProgressReport) -> ProgressReport:
    locked = (
        ProgressReport.objects.select_for_update(of=("self",))
        .select_related("referral")
        .filter(pk=report.pk)
        .first()
    )
    if locked is None:
        raise NotFound()
    return locked


def _report_parties(actor: User, report: ProgressReport, action: str) -> frozenset[str]:
    """The actor's parties to the report's referral; NotFound (audited) when the report is not
    visible to them (another practice's, or unsigned to the practice)."""
    access = access_for(actor)
    referral = report.referral
    parties = referral_parties(access, referral) if can_view_referral(access, referral) else None
    if parties is None or not permissions.can_see_report(parties, report):
        raise _deny(NotFound(), actor, action, "progress_report", report.public_id)
    return parties


def _clinic_recipients(referral: Referral, roles: Sequence[str]) -> list[User]:
    return list(clinic_staff_for_clinic(referral.clinic, roles=list(roles)))


# --- sessions and assessments --------------------------------------------------------------------


def _total_mg(weight_kg: Decimal, dose_mg_per_kg: Decimal | None) -> Decimal | None:
    if dose_mg_per_kg is None:
        return None
    return (weight_kg * dose_mg_per_kg).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def infusion_session_record(
    *, actor: User, referral: Referral, data: SessionInput
) -> InfusionSession:
    """A clinician records a session. The first session given starts treatment (the referral
    moves from scheduled to in_treatment); the 3rd and 6th infusions request an interim report.
    """
    with _atomic():
        locked = _lock_referral(referral)
        parties = _referral_parties(actor, locked, "infusion_session.record")
        _require(
            permissions.can_record_outcomes(parties),
            actor,
            "infusion_session.record",
            locked,
            "Only the clinic's clinicians record infusion sessions.",
        )
        _require_state(
            locked,
            permissions.SESSION_STATES,
            "Sessions are recorded once the consult is scheduled and while in treatment.",
        )
        # Who may and when first: a refused caller learns nothing from the validation.
        problems = session_problems(data)
        if problems:
            raise _invalid(problems)
        previous = locked.infusion_sessions.order_by("-number").first()
        if previous is not None and data.started_at <= previous.started_at:
            raise _invalid(
                {"started_at": f"Must be after session {previous.number} (sessions are in order)."}
            )
        given = data.status != SessionStatus.HELD
        if given and locked.status == ReferralStatus.SCHEDULED:
            # The first infusion starts treatment (DESIGN.md section 5), through the lifecycle.
            locked = referral_services.referral_start_treatment(actor=actor, referral=locked)
        clinic_settings = outcome_settings_for(locked.clinic)
        session = InfusionSession.objects.create(
            referral=locked,
            number=(previous.number + 1) if previous is not None else 1,
            started_at=data.started_at,
            status=data.status,
            status_reason=data.status_reason.strip(),
            weight_kg=data.weight_kg,
            dose_mg_per_kg=data.dose_mg_per_kg,
            total_mg=_total_mg(data.weight_kg, data.dose_mg_per_kg),
            duration_minutes=data.duration_minutes,
            route=data.route,
            vitals=[
                {
                    "minute": r.minute,
                    "systolic": r.systolic,
                    "diastolic": r.diastolic,
                    "heart_rate": r.heart_rate,
                    "spo2": r.spo2,
                }
                for r in sorted(data.vitals, key=lambda reading: reading.minute)
            ],
            cadss_peak=data.cadss_peak,
            adverse_events=[
                {
                    "term": e.term.strip(),
                    "severity": e.severity,
                    "onset": e.onset,
                    "resolution": e.resolution.strip(),
                    "action": e.action.strip(),
                }
                for e in data.adverse_events
            ],
            dose_change_reason=data.dose_change_reason.strip(),
            bp_systolic_max=clinic_settings.bp_systolic_max,
            bp_diastolic_max=clinic_settings.bp_diastolic_max,
            recorded_by=actor,
        )
        audit_record(
            actor=actor,
            action="infusion_session.recorded",
            object_type="infusion_session",
            object_id=session.public_id,
            details={
                "referral": str(locked.public_id),
                "number": session.number,
                "status": session.status,
            },
        )
        if given:
            infusions = locked.infusion_sessions.exclude(status=SessionStatus.HELD).count()
            if infusions in AUTOMATIC_REPORT_AFTER:
                report_request(
                    actor=None,
                    referral=locked,
                    kind=ReportKind.INTERIM,
                    trigger=ReportTrigger.AFTER_INFUSION,
                )
        logger.info(
            "infusion_session.recorded",
            extra={"referral": str(locked.public_id), "session": str(session.public_id)},
        )
        return session


def assessment_record(
    *,
    actor: User,
    referral: Referral,
    instrument: str,
    answers: Sequence[Any],
    taken_at: datetime,
) -> Assessment:
    """A clinician records a questionnaire or rating; it is scored here. A safety flag (PHQ-9
    item 9, QIDS item 12, C-SSRS moderate or high) alerts the clinic's clinicians and
    coordinators at once."""
    with _atomic():
        locked = _lock_referral(referral)
        parties = _referral_parties(actor, locked, "assessment.record")
        _require(
            permissions.can_record_outcomes(parties),
            actor,
            "assessment.record",
            locked,
            "Only the clinic's clinicians record assessments.",
        )
        _require_state(
            locked,
            permissions.ASSESSMENT_STATES,
            "Assessments are recorded from acceptance until treatment ends.",
        )
        # Who may and when first: a refused caller learns nothing from the validation.
        if instrument not in Instrument.values:
            raise _invalid({"instrument": f"One of: {', '.join(Instrument.values)}."})
        try:
            scored = score(instrument, answers)
        except ScoringError as error:
            path = "answers" if error.item is None else f"answers.{error.item - 1}"
            raise ServiceError(
                error.message,
                code="invalid_answers",
                extra={"item": error.item, "fields": {path: error.message}},
            ) from None
        problems: dict[str, str] = {}
        _check_moment(taken_at, "taken_at", problems)
        if problems:
            raise _invalid(problems)
        assessment = Assessment.objects.create(
            referral=locked,
            instrument=instrument,
            answers=list(answers),
            total=scored.total,
            band=scored.band,
            flags=list(scored.flags),
            taken_at=taken_at,
            recorded_by=actor,
        )
        audit_record(
            actor=actor,
            action="assessment.recorded",
            object_type="assessment",
            object_id=assessment.public_id,
            details={
                "referral": str(locked.public_id),
                "instrument": instrument,
                "safety_flag": bool(scored.flags),
            },
        )
        if scored.flags:
            notify(
                recipients=_clinic_recipients(locked, (Role.CLINICIAN, Role.COORDINATOR)),
                event="assessment.safety_flag",
                reference=locked.number,
                link=outcomes_path(locked),
                actor=actor,
                urgent=True,
            )
            logger.warning(
                "assessment.safety_flag",
                extra={"referral": str(locked.public_id), "assessment": str(assessment.public_id)},
            )
        return assessment


# --- requesting and generating reports -------------------------------------------------------


def enqueue_report_generation(report_public_id: str) -> bool:
    """Hand a report to the queue; never raise. A broker that is down must not fail a request
    whose data is committed: the report stays queued and the re-drive enqueues it again."""
    try:
        tasks.generate_progress_report.apply_async(
            args=(report_public_id,), retry=True, retry_policy=ENQUEUE_RETRY_POLICY
        )
    except Retry:
        # Only in eager mode (development, tests): the task ran in-process and scheduled a retry.
        pass
    except Exception as error:  # any broker or transport error: the queued row is kept
        logger.warning(
            "reports.enqueue_failed",
            extra={"report": report_public_id, "error": type(error).__name__},
        )
        return False
    return True


def report_request(
    *,
    actor: User | None,
    referral: Referral,
    kind: str,
    trigger: str = ReportTrigger.REQUESTED,
) -> ProgressReport:
    """Record a queued report (the next version for the referral) and enqueue its generation
    once the transaction commits. ``actor`` is None for the automatic requests."""
    if kind not in ReportKind.values:
        raise _invalid({"kind": f"One of: {', '.join(ReportKind.values)}."})
    with _atomic():
        locked = _lock_referral(referral)
        if actor is not None:
            parties = _referral_parties(actor, locked, "report.request")
            _require(
                permissions.can_request_report(parties),
                actor,
                "report.request",
                locked,
                "Only the clinic's clinicians request progress reports.",
            )
        _require_state(
            locked, permissions.REPORT_STATES, "Progress reports are made during treatment."
        )
        latest = locked.progress_reports.aggregate(latest=Max("version"))["latest"] or 0
        report = ProgressReport.objects.create(
            referral=locked,
            kind=kind,
            version=latest + 1,
            trigger=trigger,
            requested_by=actor,
            last_enqueued_at=timezone.now(),
        )
        audit_record(
            actor=actor,
            action="report.requested",
            object_type="progress_report",
            object_id=report.public_id,
            details={
                "referral": str(locked.public_id),
                "version": report.version,
                "kind": kind,
                "trigger": trigger,
            },
        )
        transaction.on_commit(partial(enqueue_report_generation, str(report.public_id)))
        return report


def _parse_id(report_id: uuid.UUID | str) -> uuid.UUID | None:
    try:
        return report_id if isinstance(report_id, uuid.UUID) else uuid.UUID(str(report_id))
    except ValueError:
        return None


def _claim(public_id: uuid.UUID) -> ProgressReport | None:
    """Move a queued (or abandoned generating) report to generating; count the attempt."""
    with transaction.atomic():
        report = (
            ProgressReport.objects.select_for_update(of=("self",))
            .filter(public_id=public_id)
            .first()
        )
        if report is None or report.status in (ReportStatus.READY, ReportStatus.FAILED):
            return report
        report.status = ReportStatus.GENERATING
        report.attempts += 1
        report.generation_started_at = timezone.now()
        report.save(update_fields=["status", "attempts", "generation_started_at", "updated_at"])
        return report


def _pause_for_tests() -> None:
    """A test-only pause (settings.REPORTS_GENERATION_PAUSE_SECONDS, 0 in production) while the
    report is held, so a test can kill the worker at this point."""
    seconds = float(getattr(settings, "REPORTS_GENERATION_PAUSE_SECONDS", 0) or 0)
    if seconds > 0:
        time.sleep(seconds)


def _ready_recipients(report: ProgressReport) -> list[User]:
    if report.requested_by is not None:
        return [report.requested_by]
    return _clinic_recipients(report.referral, (Role.CLINICIAN,))


def report_generate(*, report_id: uuid.UUID | str) -> ProgressReport | None:
    """Build, render and store the report's PDF and mark it ready (see the module docstring).

    Returns the report (None for an unknown id). A ready or failed report is returned unchanged.
    """
    public_id = _parse_id(report_id)
    if public_id is None:
        return None
    claimed = _claim(public_id)
    if claimed is None or claimed.status != ReportStatus.GENERATING:
        return claimed
    if claimed.attempts > MAX_GENERATION_ATTEMPTS:
        return report_mark_failed(
            report_id=public_id,
            reason=f"Gave up after {MAX_GENERATION_ATTEMPTS} attempts.",
        )
    stored_name = ""
    try:
        with transaction.atomic():
            report = (
                ProgressReport.objects.select_for_update(of=("self",))
                .select_related(
                    "referral__clinic",
                    "referral__practice",
                    "referral__patient",
                    "referral__provider",
                    "requested_by",
                )
                .get(pk=claimed.pk)
            )
            if report.status != ReportStatus.GENERATING:
                # Another run finished (or failed) it while this one waited for the lock.
                return report
            _pause_for_tests()
            referral = report.referral
            snapshot = build_snapshot(report, outcome_settings_for(referral.clinic))
            summary = compute_summary(snapshot)
            pdf = render_pdf(build_report_input(snapshot, summary))
            stored = store_encrypted_file(
                io.BytesIO(pdf), purpose=REPORT_FILE_PURPOSE, owner_id=str(report.public_id)
            )
            stored_name = stored.name
            report.template_version = TEMPLATE_VERSION
            report.input_snapshot = snapshot
            report.input_hash = snapshot_hash(snapshot)
            report.summary = summary
            report.pdf_name = stored.name
            report.pdf_size = stored.size
            report.pdf_sha256 = stored.sha256
            report.status = ReportStatus.READY
            report.generated_at = timezone.now()
            report.failure_reason = ""
            report.save(
                update_fields=[
                    "template_version",
                    "input_snapshot",
                    "input_hash",
                    "summary",
                    "pdf_name",
                    "pdf_size",
                    "pdf_sha256",
                    "status",
                    "generated_at",
                    "failure_reason",
                    "updated_at",
                ]
            )
            audit_record(
                actor=None,
                action="report.generated",
                object_type="progress_report",
                object_id=report.public_id,
                details={
                    "referral": str(referral.public_id),
                    "version": report.version,
                    "input_hash": report.input_hash,
                    "pdf_sha256": report.pdf_sha256,
                },
            )
            referral_services.referral_event_record(
                referral=referral,
                kind=EventKind.REPORT_READY,
                actor=None,
                note=f"Progress report {report.version} ({report.kind}) is ready for review.",
            )
            notify(
                recipients=_ready_recipients(report),
                event="report.ready",
                reference=referral.number,
                link=report_path(report),
            )
    except BaseException:
        if stored_name:
            # The registry row rolled back with the transaction; do not leave the file behind.
            stored_file_path(stored_name).unlink(missing_ok=True)
        raise
    logger.info("report.generated", extra={"report": str(report.public_id)})
    return report


def report_mark_failed(*, report_id: uuid.UUID | str, reason: str) -> ProgressReport | None:
    """Mark a report that could not be generated as failed, with a PHI-free reason."""
    public_id = _parse_id(report_id)
    if public_id is None:
        return None
    with transaction.atomic():
        report = (
            ProgressReport.objects.select_for_update(of=("self",))
            .select_related("referral__clinic", "requested_by")
            .filter(public_id=public_id)
            .first()
        )
        if report is None or report.status in (ReportStatus.READY, ReportStatus.FAILED):
            return report
        report.status = ReportStatus.FAILED
        report.failure_reason = reason[:200]
        report.save(update_fields=["status", "failure_reason", "updated_at"])
        audit_record(
            actor=None,
            action="report.failed",
            object_type="progress_report",
            object_id=report.public_id,
            details={"referral": str(report.referral.public_id), "reason": report.failure_reason},
        )
        notify(
            recipients=_ready_recipients(report),
            event="report.failed",
            reference=report.referral.number,
            link=report_path(report),
        )
    logger.warning("report.failed", extra={"report": str(public_id), "reason": reason})
    return report


def report_generation_redrive(*, now: datetime | None = None) -> int:
    """Enqueue again the reports that were never picked up or whose worker died; returns how
    many. Each is leased for ``REDRIVE_QUEUED_AFTER`` so a slow queue is not flooded."""
    moment = now or timezone.now()
    lease_over = Q(last_enqueued_at__isnull=True) | Q(
        last_enqueued_at__lt=moment - REDRIVE_QUEUED_AFTER
    )
    abandoned = Q(
        status=ReportStatus.GENERATING,
        generation_started_at__lt=moment - GENERATING_STALE_AFTER,
    )
    candidates = list(
        ProgressReport.objects.filter((Q(status=ReportStatus.QUEUED) | abandoned) & lease_over)
        .order_by("created_at")
        .values_list("pk", "public_id")[:REDRIVE_BATCH_SIZE]
    )
    redriven = 0
    for pk, public_id in candidates:
        with transaction.atomic():
            leased = (
                ProgressReport.objects.filter(pk=pk)
                .filter(lease_over)
                .update(last_enqueued_at=moment)
            )
        if leased and enqueue_report_generation(str(public_id)):
            redriven += 1
    if redriven:
        logger.info("reports.redriven", extra={"count": redriven})
    return redriven


def report_request_maintenance_due(*, now: datetime | None = None) -> int:
    """Monthly reports during maintenance: for each referral in treatment past its induction
    series whose last report is older than the clinic's interval and that has new data since,
    request an interim report. Returns how many were requested."""
    moment = now or timezone.now()
    referrals = (
        Referral.objects.filter(status=ReferralStatus.IN_TREATMENT)
        .select_related("clinic")
        .annotate(
            infusions=Count(
                "infusion_sessions",
                filter=~Q(infusion_sessions__status=SessionStatus.HELD),
                distinct=True,
            ),
            last_report_at=Max("progress_reports__created_at"),
            last_session_at=Max("infusion_sessions__created_at"),
            last_assessment_at=Max("assessments__created_at"),
        )
    )
    requested = 0
    settings_by_clinic: dict[int, OutcomeSettings] = {}
    for referral in referrals:
        clinic_settings = settings_by_clinic.setdefault(
            referral.clinic_id, outcome_settings_for(referral.clinic)
        )
        if referral.infusions < clinic_settings.infusions_planned:
            continue  # still in induction: reports follow infusions 3 and 6
        last_report_at = referral.last_report_at
        if last_report_at is not None:
            if last_report_at > moment - timedelta(days=clinic_settings.maintenance_report_days):
                continue
            newest = max(
                (t for t in (referral.last_session_at, referral.last_assessment_at) if t),
                default=None,
            )
            if newest is None or newest <= last_report_at:
                continue  # nothing new to report
        report_request(
            actor=None,
            referral=referral,
            kind=ReportKind.INTERIM,
            trigger=ReportTrigger.MAINTENANCE,
        )
        requested += 1
    return requested


# --- sign-off, delivery, acknowledgement --------------------------------------------------------


class ReportUnavailable(ServiceError):
    """The stored inputs no longer match their hash: nothing is signed or sent."""

    status_code = 500
    default_code = "report_unavailable"


def _intact_snapshot(report: ProgressReport) -> dict[str, Any] | None:
    snapshot = report.input_snapshot
    if not isinstance(snapshot, dict) or snapshot_hash(snapshot) != report.input_hash:
        return None
    return snapshot


def _record_integrity_failure(report: ProgressReport) -> None:
    security_event_record(
        action="report.integrity_failed",
        details={"report": str(report.public_id)},
        object_type="progress_report",
        object_id=report.public_id,
    )


INTEGRITY_MESSAGE: Final = (
    "The report's stored inputs failed their integrity check; request a new version."
)


def report_verified_snapshot(report: ProgressReport) -> dict[str, Any]:
    """The report's input snapshot, checked against its hash; a mismatch is recorded as a
    security event and nothing is returned (``ReportUnavailable``)."""
    snapshot = _intact_snapshot(report)
    if snapshot is None:
        _record_integrity_failure(report)
        raise ReportUnavailable(INTEGRITY_MESSAGE)
    return snapshot


def report_sign(*, actor: User, report: ProgressReport, interpretation: str) -> ProgressReport:
    """A clinician adds the interpretation and signs. The signed PDF is rendered from the
    report's verified input snapshot and delivered to the referring practice (a PHI-free
    notification). Signing the final report completes the referral's treatment."""
    text = (interpretation or "").strip()
    if not text:
        raise _invalid({"interpretation": "Required: the clinician's interpretation."})
    if len(text) > INTERPRETATION_MAX:
        raise _invalid({"interpretation": f"At most {INTERPRETATION_MAX} characters."})
    stored_name = ""
    try:
        with _atomic():
            locked = _lock_report(report)
            parties = _report_parties(actor, locked, "report.sign")
            referral = locked.referral
            _require(
                permissions.can_sign_report(parties),
                actor,
                "report.sign",
                locked,
                "Only the clinic's clinicians sign progress reports.",
            )
            if locked.status != ReportStatus.READY:
                raise Conflict("Only a ready report can be signed.", code="report_not_ready")
            if locked.is_signed:
                raise Conflict("This report is already signed.", code="already_signed")
            snapshot = _intact_snapshot(locked)
            summary = compute_summary(snapshot) if snapshot is not None else None
            if snapshot is None or summary is None or summary != locked.summary:
                raise _AfterRollback(
                    ReportUnavailable(INTEGRITY_MESSAGE),
                    partial(_record_integrity_failure, locked),
                )
            if locked.kind == ReportKind.FINAL and referral.status != ReferralStatus.COMPLETED:
                # Completes treatment through the lifecycle (409 unless in treatment); a
                # referral whose treatment was completed already stays as it is.
                referral_services.referral_complete(actor=actor, referral=referral)
            now = timezone.now()
            signed_at = now.astimezone(ZoneInfo(snapshot["time_zone"]))
            pdf = render_pdf(
                build_report_input(
                    snapshot,
                    summary,
                    Interpretation(
                        text=text,
                        signer_name=actor.full_name or actor.email,
                        signed_at=signed_at,
                    ),
                )
            )
            # A separate binding for the signed file, so it cannot stand in for the draft.
            stored = store_encrypted_file(
                io.BytesIO(pdf),
                purpose=REPORT_FILE_PURPOSE,
                owner_id=signed_file_owner(locked),
            )
            stored_name = stored.name
            locked.interpretation = text
            locked.signed_by = actor
            locked.signed_at = now
            locked.signed_pdf_name = stored.name
            locked.signed_pdf_size = stored.size
            locked.signed_pdf_sha256 = stored.sha256
            locked.delivered_at = now
            locked.save(
                update_fields=[
                    "interpretation",
                    "signed_by",
                    "signed_at",
                    "signed_pdf_name",
                    "signed_pdf_size",
                    "signed_pdf_sha256",
                    "delivered_at",
                    "updated_at",
                ]
            )
            audit_record(
                actor=actor,
                action="report.signed",
                object_type="progress_report",
                object_id=locked.public_id,
                details={
                    "referral": str(referral.public_id),
                    "version": locked.version,
                    "kind": locked.kind,
                    "pdf_sha256": stored.sha256,
                },
            )
            referral_services.referral_event_record(
                referral=referral,
                kind=EventKind.REPORT_SIGNED,
                actor=actor,
                note=(
                    f"Progress report {locked.version} ({locked.kind}) was signed and delivered "
                    "to the referring provider."
                ),
            )
            notify(
                recipients=[referral.provider, referral.created_by],
                event="report.delivered",
                reference=referral.number,
                link=report_path(locked),
                actor=actor,
            )
    except BaseException:
        if stored_name:
            stored_file_path(stored_name).unlink(missing_ok=True)
        raise
    logger.info("report.signed", extra={"report": str(locked.public_id)})
    return locked


def signed_file_owner(report: ProgressReport) -> str:
    return f"{report.public_id}:signed"


def report_acknowledge(*, actor: User, report: ProgressReport) -> ProgressReport:
    """The referring provider acknowledges a delivered report; acknowledging the final report
    closes the referral (the loop is closed)."""
    with _atomic():
        locked = _lock_report(report)
        parties = _report_parties(actor, locked, "report.acknowledge")
        referral = locked.referral
        _require(
            permissions.can_acknowledge_report(parties),
            actor,
            "report.acknowledge",
            locked,
            "Only the referring provider acknowledges progress reports.",
        )
        if locked.acknowledged_at is not None:
            raise Conflict("This report is already acknowledged.", code="already_acknowledged")
        if locked.kind == ReportKind.FINAL and referral.status != ReferralStatus.CLOSED:
            # Closes the referral through the lifecycle (409 unless treatment is completed).
            referral_services.referral_acknowledge(actor=actor, referral=referral)
        locked.acknowledged_by = actor
        locked.acknowledged_at = timezone.now()
        locked.save(update_fields=["acknowledged_by", "acknowledged_at", "updated_at"])
        audit_record(
            actor=actor,
            action="report.acknowledged",
            object_type="progress_report",
            object_id=locked.public_id,
            details={"referral": str(referral.public_id), "version": locked.version},
        )
        if locked.signed_by is not None:
            notify(
                recipients=[locked.signed_by],
                event="report.acknowledged",
                reference=referral.number,
                link=report_path(locked),
                actor=actor,
            )
    logger.info("report.acknowledged", extra={"report": str(locked.public_id)})
    return locked
