"""What a progress report contains: its input snapshot, its summary and the renderer's input.

A report is built in three steps, each a function of the one before, so the same snapshot always
gives the same summary and the same PDF bytes:

1. ``build_snapshot`` reads the referral's data as of the moment the report was requested (rows
   recorded later are left out) into a plain JSON-compatible dict. Its canonical JSON is hashed
   (``input_hash``) and the snapshot itself is stored encrypted with the report, so signing can
   render the signed PDF from exactly the inputs that were reviewed.
2. ``compute_summary`` applies ``portal.clinical.scoring`` to the snapshot: baseline, latest,
   change, response, remission per instrument, infusions completed/planned, safety flags. The
   summary holds numbers and codes only, no names or dates.
3. ``build_report_input`` maps snapshot and summary onto ``reports.rendering.ReportInput``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from django.conf import settings

from portal.clinical.scoring import INSTRUMENTS, DatedScore, Outcome, Thresholds, outcome
from reports.rendering import (
    BottomLine,
    InfusionRow,
    InstrumentSeries,
    Interpretation,
    Methods,
    ReportInput,
)

from .models import (
    OUTCOME_INSTRUMENTS,
    Assessment,
    InfusionSession,
    OutcomeSettings,
    ProgressReport,
    Route,
    SessionStatus,
)

#: Bump when the snapshot format or the PDF layout changes: the report records which it used.
TEMPLATE_VERSION: Final = "2026.1"
SNAPSHOT_FORMAT: Final = 1

# Rendering statuses (reports.rendering.data.OUTCOME_STATUSES) for scoring's Outcome.status.
_STATUS: Final[dict[str, str]] = {
    "remission": "remission",
    "response": "response",
    "partial": "partial_response",
    "none": "no_response",
    "undefined": "undetermined",
}

FLAG_LABELS: Final[dict[str, str]] = {
    "phq9_item9": "PHQ-9 item 9 (thoughts of self-harm) above 0",
    "qids_item12": "QIDS-SR16 item 12 (suicidal ideation) above 0",
    "cssrs_moderate": "C-SSRS screener: suggested level moderate",
    "cssrs_high": "C-SSRS screener: suggested level high",
}


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def snapshot_hash(snapshot: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(snapshot)).hexdigest()


def report_reference(referral_number: str, version: int) -> str:
    """The report's printed id: the referral number and the version ("R-2026-00042-PR2")."""
    return f"{referral_number}-PR{version}"


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _instant(value: datetime) -> str:
    return value.isoformat()


def _birth_year(birth_date: str) -> int | None:
    try:
        return date.fromisoformat(birth_date).year
    except ValueError:
        return None


def settings_snapshot(clinic_settings: OutcomeSettings) -> dict[str, Any]:
    return {
        "response_drop_percent": clinic_settings.response_drop_percent,
        "partial_response_low_percent": clinic_settings.partial_response_low_percent,
        "phq9_remission_max": clinic_settings.phq9_remission_max,
        "qids_remission_max": clinic_settings.qids_remission_max,
        "madrs_remission_max": clinic_settings.madrs_remission_max,
        "baseline_window_days": clinic_settings.baseline_window_days,
        "bp_systolic_max": clinic_settings.bp_systolic_max,
        "bp_diastolic_max": clinic_settings.bp_diastolic_max,
        "infusions_planned": clinic_settings.infusions_planned,
        "primary_instrument": clinic_settings.primary_instrument,
    }


def session_snapshot(session: InfusionSession) -> dict[str, Any]:
    return {
        "number": session.number,
        "started_at": _instant(session.started_at),
        "status": session.status,
        "status_reason": session.status_reason,
        "weight_kg": _decimal(session.weight_kg),
        "dose_mg_per_kg": _decimal(session.dose_mg_per_kg),
        "total_mg": _decimal(session.total_mg),
        "duration_minutes": session.duration_minutes,
        "route": session.route,
        "vitals": sorted(session.vitals, key=lambda reading: reading["minute"]),
        "cadss_peak": session.cadss_peak,
        "adverse_events": list(session.adverse_events),
        "dose_change_reason": session.dose_change_reason,
        "bp_systolic_max": session.bp_systolic_max,
        "bp_diastolic_max": session.bp_diastolic_max,
    }


def assessment_snapshot(assessment: Assessment) -> dict[str, Any]:
    return {
        "id": str(assessment.public_id),
        "instrument": assessment.instrument,
        "total": assessment.total,
        "band": assessment.band,
        "flags": list(assessment.flags),
        "taken_at": _instant(assessment.taken_at),
    }


def build_snapshot(report: ProgressReport, clinic_settings: OutcomeSettings) -> dict[str, Any]:
    """Everything the report shows, as of the moment it was requested (``report.created_at``)."""
    referral = report.referral
    as_of = report.created_at
    sessions = InfusionSession.objects.filter(referral=referral, created_at__lte=as_of).order_by(
        "number"
    )
    assessments = Assessment.objects.filter(referral=referral, created_at__lte=as_of).order_by(
        "taken_at", "id"
    )
    patient = referral.patient
    provider = referral.provider
    return {
        "format": SNAPSHOT_FORMAT,
        "template_version": TEMPLATE_VERSION,
        "report": {
            "id": str(report.public_id),
            "reference": report_reference(referral.number, report.version),
            "version": report.version,
            "kind": report.kind,
        },
        "referral": {"id": str(referral.public_id), "number": referral.number},
        "data_as_of": _instant(as_of),
        "time_zone": settings.TIME_ZONE,
        "clinic": {"name": referral.clinic.name},
        "referring_provider": {"name": provider.full_name or provider.email},
        "patient": {
            "display_name": f"{patient.given_name} {patient.family_name}".strip(),
            "birth_year": _birth_year(patient.birth_date),
        },
        "settings": settings_snapshot(clinic_settings),
        "infusions": [session_snapshot(session) for session in sessions],
        "assessments": [assessment_snapshot(assessment) for assessment in assessments],
    }


# --- summary (pure) ---------------------------------------------------------------------------


def _thresholds(snapshot_settings: Mapping[str, Any]) -> Thresholds:
    return Thresholds(
        response_drop_percent=snapshot_settings["response_drop_percent"],
        partial_response_low_percent=snapshot_settings["partial_response_low_percent"],
        phq9_remission_max=snapshot_settings["phq9_remission_max"],
        qids_remission_max=snapshot_settings["qids_remission_max"],
        madrs_remission_max=snapshot_settings["madrs_remission_max"],
        baseline_window_days=snapshot_settings["baseline_window_days"],
    )


def _given(infusions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [item for item in infusions if item["status"] != SessionStatus.HELD]


def _outcomes(snapshot: Mapping[str, Any]) -> dict[str, Outcome]:
    thresholds = _thresholds(snapshot["settings"])
    infusion_times = [
        datetime.fromisoformat(item["started_at"]) for item in _given(snapshot["infusions"])
    ]
    scores = [
        DatedScore(
            instrument=item["instrument"],
            total=item["total"],
            taken_at=datetime.fromisoformat(item["taken_at"]),
        )
        for item in snapshot["assessments"]
        if item["instrument"] in OUTCOME_INSTRUMENTS
    ]
    present = {score.instrument for score in scores}
    return {
        instrument: outcome(instrument, scores, infusion_times, thresholds)
        for instrument in OUTCOME_INSTRUMENTS
        if instrument in present
    }


def _outcome_summary(result: Outcome) -> dict[str, Any]:
    return {
        "baseline": result.baseline.total if result.baseline is not None else None,
        "latest": result.latest.total if result.latest is not None else None,
        "change_percent": result.change_percent,
        "response": result.response,
        "partial_response": result.partial_response,
        "remission": result.remission,
        "time_to_response": result.time_to_response,
        "status": _STATUS[result.status],
        "note": result.note,
    }


def compute_summary(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The report's structured summary (DESIGN.md section 6): numbers and codes only."""
    outcomes = _outcomes(snapshot)
    instruments = {name: _outcome_summary(result) for name, result in outcomes.items()}
    primary = snapshot["settings"]["primary_instrument"]
    given = _given(snapshot["infusions"])
    flags = sorted({flag for item in snapshot["assessments"] for flag in item["flags"]})
    return {
        "infusions_completed": len(given),
        "infusions_held": len(snapshot["infusions"]) - len(given),
        "infusions_planned": snapshot["settings"]["infusions_planned"],
        "primary_instrument": primary,
        "status": instruments[primary]["status"] if primary in instruments else "undetermined",
        "instruments": instruments,
        "flags": flags,
        "thresholds": {
            key: snapshot["settings"][key]
            for key in (
                "response_drop_percent",
                "partial_response_low_percent",
                "phq9_remission_max",
                "qids_remission_max",
                "madrs_remission_max",
                "baseline_window_days",
                "bp_systolic_max",
                "bp_diastolic_max",
            )
        },
    }


# --- renderer input (pure) --------------------------------------------------------------------


def band_label(band_id: str) -> str:
    return band_id.replace("_", " ")


def remission_max(instrument: str, snapshot_settings: Mapping[str, Any]) -> int | None:
    return _thresholds(snapshot_settings).remission_max(instrument)


def instrument_series(
    instrument: str, points: Sequence[tuple[datetime, int]], snapshot_settings: Mapping[str, Any]
) -> InstrumentSeries:
    spec = INSTRUMENTS[instrument]
    if spec.max_total is None:  # pragma: no cover - every outcome instrument has a total
        raise ValueError(f"{spec.name} has no total to chart")
    cut_off = remission_max(instrument, snapshot_settings)
    return InstrumentSeries(
        instrument_id=instrument,
        display_name=spec.name,
        max_score=spec.max_total,
        bands=tuple((band.low, band.high, band_label(band.id)) for band in spec.bands),
        # Between the highest remission total and the next one: every dot below it is remission.
        remission_line=None if cut_off is None else cut_off + 0.5,
        remission_label="" if cut_off is None else f"Remission: total {cut_off} or less",
        points=tuple(points),
    )


def series_from_snapshot(snapshot: Mapping[str, Any]) -> tuple[InstrumentSeries, ...]:
    zone = ZoneInfo(snapshot["time_zone"])
    by_instrument: dict[str, list[tuple[datetime, int]]] = {}
    for item in snapshot["assessments"]:
        if item["instrument"] in OUTCOME_INSTRUMENTS:
            when = datetime.fromisoformat(item["taken_at"]).astimezone(zone)
            by_instrument.setdefault(item["instrument"], []).append((when, item["total"]))
    return tuple(
        instrument_series(name, by_instrument[name], snapshot["settings"])
        for name in OUTCOME_INSTRUMENTS
        if name in by_instrument
    )


def infusion_dates(snapshot: Mapping[str, Any]) -> tuple[date, ...]:
    """Dates of the infusions given (held sessions are not infusions), in the clinic's zone."""
    zone = ZoneInfo(snapshot["time_zone"])
    return tuple(
        datetime.fromisoformat(item["started_at"]).astimezone(zone).date()
        for item in _given(snapshot["infusions"])
    )


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _adverse_event_text(event: Mapping[str, Any]) -> str:
    details = [event["severity"]]
    if event.get("onset") is not None:
        details.append(f"onset minute {event['onset']}")
    if event.get("resolution"):
        details.append(str(event["resolution"]))
    text = f"{event['term']} ({', '.join(details)})"
    if event.get("action"):
        text += f"; action: {event['action']}"
    return text


def _session_notes(item: Mapping[str, Any]) -> str:
    notes: list[str] = []
    if item["status"] == SessionStatus.HELD:
        notes.append(f"Held, not given: {item['status_reason']}")
    elif item["status"] == SessionStatus.STOPPED:
        notes.append(f"Stopped early: {item['status_reason']}")
    if item["route"] != Route.IV:
        notes.append(f"Route {Route(item['route']).label}")
    if item["dose_change_reason"]:
        notes.append(f"Dose change: {item['dose_change_reason']}")
    vitals = item["vitals"]
    # A held session's reason already says why; a session given despite a high pre-dose BP
    # shows it here.
    if item["status"] != SessionStatus.HELD and vitals and pre_dose_above_threshold(item):
        first = vitals[0]
        notes.append(
            f"Pre-dose BP {first['systolic']}/{first['diastolic']} above "
            f"{item['bp_systolic_max']}/{item['bp_diastolic_max']}"
        )
    return "; ".join(notes)


def pre_dose_above_threshold(item: Mapping[str, Any]) -> bool:
    """The first reading of the session is above the BP thresholds in force at the time."""
    vitals = item["vitals"]
    if not vitals:
        return False
    first = min(vitals, key=lambda reading: reading["minute"])
    return bool(
        first["systolic"] > item["bp_systolic_max"] or first["diastolic"] > item["bp_diastolic_max"]
    )


def infusion_row(item: Mapping[str, Any], zone: ZoneInfo) -> InfusionRow:
    vitals = sorted(item["vitals"], key=lambda reading: reading["minute"])
    pre = vitals[0] if vitals else None
    post = vitals[-1] if len(vitals) > 1 else None
    peak = max(vitals, key=lambda reading: reading["systolic"]) if vitals else None
    return InfusionRow(
        date=datetime.fromisoformat(item["started_at"]).astimezone(zone).date(),
        weight_kg=_float(item["weight_kg"]),
        mg_per_kg=_float(item["dose_mg_per_kg"]),
        total_mg=_float(item["total_mg"]),
        duration_min=item["duration_minutes"],
        pre_systolic=pre["systolic"] if pre else None,
        pre_diastolic=pre["diastolic"] if pre else None,
        peak_systolic=peak["systolic"] if peak else None,
        peak_diastolic=peak["diastolic"] if peak else None,
        post_systolic=post["systolic"] if post else None,
        post_diastolic=post["diastolic"] if post else None,
        pre_hr=pre["heart_rate"] if pre else None,
        peak_hr=max(reading["heart_rate"] for reading in vitals) if vitals else None,
        post_hr=post["heart_rate"] if post else None,
        lowest_spo2=min(reading["spo2"] for reading in vitals) if vitals else None,
        cadss_peak=item["cadss_peak"],
        adverse_events="; ".join(_adverse_event_text(event) for event in item["adverse_events"]),
        dose_change_note=_session_notes(item),
    )


def flag_lines(snapshot: Mapping[str, Any]) -> tuple[str, ...]:
    """Each safety flag raised in the period, with the date it was last raised."""
    zone = ZoneInfo(snapshot["time_zone"])
    last_seen: dict[str, date] = {}
    for item in snapshot["assessments"]:
        for flag in item["flags"]:
            last_seen[flag] = datetime.fromisoformat(item["taken_at"]).astimezone(zone).date()
    return tuple(
        f"{FLAG_LABELS.get(flag, flag)} (last {day:%Y-%m-%d})"
        for flag, day in sorted(last_seen.items())
    )


def next_planned_step(summary: Mapping[str, Any], kind: str) -> str:
    completed = summary["infusions_completed"]
    planned = summary["infusions_planned"]
    if kind == "final":
        return "Treatment course complete; see the clinician's recommendations."
    if completed < planned:
        return f"Continue the induction series: infusion {completed + 1} of {planned}."
    return "Maintenance as set out in the clinician's recommendations."


def methods(snapshot: Mapping[str, Any], summary: Mapping[str, Any]) -> Methods:
    values = snapshot["settings"]
    rows: list[tuple[str, str]] = [
        (
            "Change",
            "(latest - baseline) / baseline, as a whole percentage; undefined when the "
            "baseline is 0",
        ),
        ("Response", f"a drop of {values['response_drop_percent']} % or more from baseline"),
        (
            "Partial response",
            f"a drop of {values['partial_response_low_percent']} % or more, below "
            f"{values['response_drop_percent']} %",
        ),
        ("Remission, PHQ-9", f"total {values['phq9_remission_max']} or less"),
        ("Remission, QIDS-SR16", f"total {values['qids_remission_max']} or less"),
        ("Remission, MADRS", f"total {values['madrs_remission_max']} or less"),
        ("Time to response", "the infusion number at which response was first met"),
        (
            "Pre-dose blood pressure",
            f"above {values['bp_systolic_max']}/{values['bp_diastolic_max']} mmHg is a reason "
            "to delay the infusion",
        ),
        (
            "Safety flags",
            "PHQ-9 item 9 above 0, QIDS-SR16 item 12 above 0, C-SSRS suggested level moderate "
            "or high",
        ),
        ("Infusions completed", "sessions in which ketamine was given (held sessions excluded)"),
    ]
    notes = [
        f"{INSTRUMENTS[name].name}: {item['note']}"
        for name, item in summary["instruments"].items()
        if item["note"]
    ]
    return Methods(
        thresholds=tuple(rows),
        baseline_rule=(
            "The baseline of each instrument is its last score taken on or before the first "
            f"infusion, at most {values['baseline_window_days']} days before it. Scores are "
            "compared only within the same instrument; the latest score is the last one taken "
            "after the first infusion."
        ),
        notes=" ".join(notes),
    )


def build_report_input(
    snapshot: Mapping[str, Any],
    summary: Mapping[str, Any],
    interpretation: Interpretation | None = None,
) -> ReportInput:
    zone = ZoneInfo(snapshot["time_zone"])
    data_as_of = datetime.fromisoformat(snapshot["data_as_of"]).astimezone(zone)
    rows = tuple(infusion_row(item, zone) for item in snapshot["infusions"])
    moments = [
        datetime.fromisoformat(item["taken_at"]).astimezone(zone).date()
        for item in snapshot["assessments"]
    ] + [row.date for row in rows]
    period_end = data_as_of.date()
    period_start = min([*moments, period_end])
    primary = summary["primary_instrument"]
    primary_outcome = summary["instruments"].get(primary, {})
    report = snapshot["report"]
    return ReportInput(
        clinic_name=snapshot["clinic"]["name"],
        referring_provider_name=snapshot["referring_provider"]["name"],
        patient_display_name=snapshot["patient"]["display_name"],
        patient_birth_year=snapshot["patient"]["birth_year"],
        report_id=report["reference"],
        version=report["version"],
        kind=report["kind"],
        period_start=period_start,
        period_end=period_end,
        data_as_of=data_as_of,
        bottom_line=BottomLine(
            status=summary["status"],
            primary_instrument_id=primary,
            baseline=primary_outcome.get("baseline"),
            latest=primary_outcome.get("latest"),
            change_percent=primary_outcome.get("change_percent"),
            infusions_completed=summary["infusions_completed"],
            infusions_planned=summary["infusions_planned"],
            active_safety_flags=flag_lines(snapshot),
            next_planned_step=next_planned_step(summary, report["kind"]),
        ),
        series=series_from_snapshot(snapshot),
        infusions=rows,
        infusion_dates=infusion_dates(snapshot),
        interpretation=interpretation or Interpretation(),
        methods=methods(snapshot, summary),
    )
