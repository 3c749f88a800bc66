"""Portal pages for outcomes and progress reports (Django templates + htmx, no inline script).

Clinicians record sessions and assessments, request, review and sign reports; the referring
practice reads the outcomes and, for signed reports, the summary, the charts (inline SVG from
``reports.rendering.render_svg``, which contains no script), downloads the PDF and acknowledges.
The pages call the same selectors and services as the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.accounts.models import User
from portal.api.errors import Forbidden, NotFound, ServiceError
from portal.clinical.scoring import INSTRUMENTS
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from referrals.models import Referral, ReferralStatus
from referrals.selectors import referral_get_for_user, referral_list_for_user
from reports import permissions, services
from reports.apis import pdf_response
from reports.content import FLAG_LABELS, band_label, infusion_dates, pre_dose_above_threshold
from reports.content import series_from_snapshot as chart_series
from reports.forms import (
    AssessmentForm,
    InfusionSessionForm,
    InstrumentChoiceForm,
    ReportRequestForm,
    ReportSignForm,
    apply_service_errors,
)
from reports.models import InfusionSession, ProgressReport, ReportStatus
from reports.rendering import render_svg
from reports.selectors import (
    assessment_list_for_user,
    infusion_session_list_for_user,
    referral_parties_for_user,
    report_detail_for_user,
    report_list_for_user,
    report_pdf_open_for_user,
)

OUTCOME_STATES = [
    ReferralStatus.ACCEPTED,
    ReferralStatus.SCHEDULED,
    ReferralStatus.IN_TREATMENT,
    ReferralStatus.COMPLETED,
    ReferralStatus.CLOSED,
]
STATUS_TEXT = {
    "remission": "Remission",
    "response": "Response",
    "partial_response": "Partial response",
    "no_response": "No response",
    "undetermined": "Undetermined",
}


def _user(request: HttpRequest) -> User:
    # login_required guarantees it; the check narrows the type.
    if not isinstance(request.user, User):
        raise Http404
    return request.user


def _call(work: Callable[[], Any]) -> Any:
    """Selectors' and services' NotFound/Forbidden as the pages' 404/403."""
    try:
        return work()
    except NotFound as error:
        raise Http404 from error
    except Forbidden as error:
        raise PermissionDenied(str(error.detail)) from error


def _referral(request: HttpRequest, referral_id: uuid.UUID) -> Referral:
    referral: Referral = _call(
        lambda: referral_get_for_user(user=request.user, public_id=referral_id)
    )
    return referral


def _report(request: HttpRequest, report_id: uuid.UUID) -> ProgressReport:
    report: ProgressReport = _call(
        lambda: report_detail_for_user(user=request.user, public_id=report_id)
    )
    return report


@require_GET
@login_required
def outcomes_index(request: HttpRequest) -> HttpResponse:
    referrals = referral_list_for_user(user=request.user, status=OUTCOME_STATES)[:200]
    return render(request, "reports/index.html", {"referrals": referrals})


def _session_row(session: InfusionSession) -> dict[str, Any]:
    vitals = sorted(session.vitals, key=lambda reading: reading["minute"])
    item = {
        "vitals": vitals,
        "bp_systolic_max": session.bp_systolic_max,
        "bp_diastolic_max": session.bp_diastolic_max,
    }
    peak = max(vitals, key=lambda reading: reading["systolic"]) if vitals else None
    return {
        "session": session,
        "pre_bp": f"{vitals[0]['systolic']}/{vitals[0]['diastolic']}" if vitals else "",
        "peak_bp": f"{peak['systolic']}/{peak['diastolic']}" if peak else "",
        "pre_dose_high": pre_dose_above_threshold(item),
        "adverse_events": ", ".join(
            f"{event['term']} ({event['severity']})" for event in session.adverse_events
        ),
    }


@require_GET
@login_required
def referral_outcomes(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    referral = _referral(request, referral_id)
    parties = referral_parties_for_user(user=request.user, referral=referral)
    sessions = infusion_session_list_for_user(user=request.user, referral=referral)
    assessments = [
        {
            "assessment": a,
            "name": INSTRUMENTS[a.instrument].name,
            "band": band_label(a.band),
        }
        for a in assessment_list_for_user(user=request.user, referral=referral)
    ]
    reports = report_list_for_user(user=request.user, referral=referral)
    clinician = permissions.can_record_outcomes(parties)
    context = {
        "referral": referral,
        "patient": referral.patient,
        "sessions": [_session_row(session) for session in sessions],
        "assessments": assessments,
        "reports": reports,
        "can_record_sessions": clinician and referral.status in permissions.SESSION_STATES,
        "can_record_assessments": clinician and referral.status in permissions.ASSESSMENT_STATES,
        "can_request_report": permissions.can_request_report(parties)
        and referral.status in permissions.REPORT_STATES,
        "request_form": ReportRequestForm(),
        "instrument_form": InstrumentChoiceForm(),
    }
    return render(request, "reports/outcomes.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def infusion_new(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    referral = _referral(request, referral_id)
    form = InfusionSessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            session = _call(
                lambda: services.infusion_session_record(
                    actor=_user(request), referral=referral, data=form.to_input()
                )
            )
        except ServiceError as error:
            apply_service_errors(form, error.extra.get("fields", {}), str(error.detail))
        else:
            messages.success(request, f"Session {session.number} recorded.")
            return redirect("reports:outcomes", referral_id=referral.public_id)
    return render(request, "reports/infusion_form.html", {"referral": referral, "form": form})


@require_http_methods(["GET", "POST"])
@login_required
def assessment_new(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    referral = _referral(request, referral_id)
    chooser = InstrumentChoiceForm(request.GET or None)
    if not chooser.is_valid():
        return render(
            request,
            "reports/assessment_form.html",
            {"referral": referral, "chooser": chooser, "form": None},
        )
    instrument = chooser.cleaned_data["instrument"]
    form = AssessmentForm(request.POST or None, instrument=instrument)
    if request.method == "POST" and form.is_valid():
        try:
            _call(
                lambda: services.assessment_record(
                    actor=_user(request),
                    referral=referral,
                    instrument=instrument,
                    answers=form.answers(),
                    taken_at=form.cleaned_data["taken_at"],
                )
            )
        except ServiceError as error:
            item = error.extra.get("item")
            if item is not None:
                form.add_error(f"item_{item}", str(error.detail))
            else:
                apply_service_errors(form, error.extra.get("fields", {}), str(error.detail))
        else:
            messages.success(request, f"{INSTRUMENTS[instrument].name} recorded.")
            return redirect("reports:outcomes", referral_id=referral.public_id)
    context = {
        "referral": referral,
        "chooser": chooser,
        "form": form,
        "instrument_name": INSTRUMENTS[instrument].name,
    }
    return render(request, "reports/assessment_form.html", context)


@require_POST
@login_required
def report_request(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    referral = _referral(request, referral_id)
    form = ReportRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the kind of report.")
        return redirect("reports:outcomes", referral_id=referral.public_id)
    try:
        report = _call(
            lambda: services.report_request(
                actor=_user(request), referral=referral, kind=form.cleaned_data["kind"]
            )
        )
    except ServiceError as error:
        messages.error(request, str(error.detail))
        return redirect("reports:outcomes", referral_id=referral.public_id)
    return redirect("reports:report", report_id=report.public_id)


def _summary_rows(report: ProgressReport) -> list[dict[str, Any]]:
    rows = []
    for name, item in (report.summary.get("instruments") or {}).items():
        rows.append(
            {
                **item,
                "name": INSTRUMENTS[name].name,
                "primary": name == report.summary.get("primary_instrument"),
                "status": STATUS_TEXT.get(item["status"], item["status"]),
            }
        )
    return rows


def _charts(report: ProgressReport) -> list[str]:
    """Inline SVG charts from the report's verified snapshot (the same data as its PDF)."""
    if report.input_snapshot is None:
        return []
    try:
        snapshot = services.report_verified_snapshot(report)
    except services.ReportUnavailable:
        # Recorded as a security event; the page says the charts are unavailable.
        return []
    dates = infusion_dates(snapshot)
    # render_svg escapes every text it writes and emits no script or style attribute.
    return [
        mark_safe(render_svg(series, dates, id_prefix=f"v{report.version}"))  # noqa: S308  # nosec B308 B703
        for series in chart_series(snapshot)
    ]


@require_GET
@login_required
def report_page(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    report = _report(request, report_id)
    parties = referral_parties_for_user(user=request.user, referral=report.referral)
    ready = report.status == ReportStatus.READY
    context = {
        "report": report,
        "referral": report.referral,
        "pending": report.status in (ReportStatus.QUEUED, ReportStatus.GENERATING),
        "summary_rows": _summary_rows(report) if ready else [],
        "summary": report.summary if ready else None,
        "flags": [FLAG_LABELS.get(flag, flag) for flag in report.summary.get("flags", [])],
        "charts": _charts(report) if ready else [],
        "can_sign": ready and not report.is_signed and permissions.can_sign_report(parties),
        "can_acknowledge": report.is_signed
        and report.acknowledged_at is None
        and permissions.can_acknowledge_report(parties),
        "sign_form": ReportSignForm(),
    }
    return render(request, "reports/report.html", context)


@require_GET
@login_required
def report_status(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    """The htmx poll while a report is generated: once it is done, reload the whole page."""
    report = _report(request, report_id)
    response = render(request, "reports/_status.html", {"report": report, "pending": True})
    if report.status not in (ReportStatus.QUEUED, ReportStatus.GENERATING):
        response["HX-Refresh"] = "true"
    return response


@require_GET
@login_required
def report_pdf(request: HttpRequest, report_id: uuid.UUID) -> StreamingHttpResponse:
    try:
        report, found, chunks = _call(
            lambda: report_pdf_open_for_user(user=request.user, public_id=report_id)
        )
    except ServiceError as error:  # not ready yet
        raise Http404 from error
    except (DecryptionError, EncryptedFileMissing) as error:
        # Recorded as a security event by the storage; nothing of the file is sent.
        raise Http404 from error
    return pdf_response(report, found.size, chunks)


@require_POST
@login_required
def report_sign(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    report = _report(request, report_id)
    form = ReportSignForm(request.POST)
    if form.is_valid():
        try:
            _call(
                lambda: services.report_sign(
                    actor=_user(request),
                    report=report,
                    interpretation=form.cleaned_data["interpretation"],
                )
            )
        except ServiceError as error:
            messages.error(request, str(error.detail))
        else:
            messages.success(request, "Report signed and delivered to the referring provider.")
    else:
        messages.error(request, "Write the interpretation before signing.")
    return redirect("reports:report", report_id=report.public_id)


@require_POST
@login_required
def report_acknowledge(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    report = _report(request, report_id)
    try:
        _call(lambda: services.report_acknowledge(actor=_user(request), report=report))
    except ServiceError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, "Report acknowledged.")
    return redirect("reports:report", report_id=report.public_id)
