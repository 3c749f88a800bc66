"""The outcomes and reports API (DESIGN.md section 6): thin views over selectors and services.

Inputs are strict (unknown fields, wrong JSON types and out-of-range values are refused with 400
before any service runs); the services check who may do what and in which state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import User
from portal.api.errors import Conflict, ServiceError
from portal.core.downloads import file_download_response
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from referrals.apis import (
    NewestFirstPagination,
    OldestFirstPagination,
    StrictCharField,
    StrictDecimalField,
    StrictIntegerField,
    StrictSerializer,
    UserRefSerializer,
)
from referrals.selectors import referral_get_for_user
from reports import services
from reports.fhir import report_fhir_bundle
from reports.models import (
    Assessment,
    InfusionSession,
    Instrument,
    ProgressReport,
    ReportKind,
    Route,
    SessionStatus,
)
from reports.selectors import (
    assessment_list_for_user,
    infusion_session_list_for_user,
    report_detail_for_user,
    report_file,
    report_get_for_user,
    report_list_for_user,
    report_pdf_open_for_user,
)

NOT_FOUND = OpenApiResponse(description="No such referral or report, or not visible to you.")
# A refused write, as {"detail", "code"}: 400 bad input, 403 not your role, 409 not in this state.
REFUSED = {400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT}
NOT_READY = OpenApiResponse(OpenApiTypes.OBJECT, description="The report is not ready yet.")
ZONED = re.compile(r"(Z|[+-]\d{2}:?\d{2})\Z")


def _user(request: Request) -> User:
    """The signed-in user (the default permission admits no one else)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


class ZonedDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that names its time zone (a bare local time is ambiguous)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not ZONED.search(value.strip()):
            raise ValidationError("Give a date and time with its time zone (e.g. +00:00).")
        return super().to_internal_value(value)


class AssessmentPagination(CursorPagination):
    ordering = ("taken_at", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100


# --- output --------------------------------------------------------------------------------------


class InfusionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    weight_kg = serializers.DecimalField(max_digits=5, decimal_places=1, coerce_to_string=False)
    dose_mg_per_kg = serializers.DecimalField(
        max_digits=4, decimal_places=2, coerce_to_string=False, allow_null=True
    )
    total_mg = serializers.DecimalField(
        max_digits=6, decimal_places=1, coerce_to_string=False, allow_null=True
    )
    duration_minutes = serializers.IntegerField(allow_null=True)
    route = serializers.CharField()
    vitals = serializers.JSONField()
    cadss_peak = serializers.IntegerField(allow_null=True)
    adverse_events = serializers.JSONField()
    dose_change_reason = serializers.CharField()
    bp_systolic_max = serializers.IntegerField(help_text="Pre-dose threshold in force.")
    bp_diastolic_max = serializers.IntegerField(help_text="Pre-dose threshold in force.")
    recorded_by = UserRefSerializer()
    created_at = serializers.DateTimeField()


class AssessmentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    instrument = serializers.CharField()
    answers = serializers.JSONField()
    total = serializers.IntegerField(allow_null=True)
    band = serializers.CharField()
    flags = serializers.JSONField()
    taken_at = serializers.DateTimeField()
    recorded_by = UserRefSerializer()
    created_at = serializers.DateTimeField()


class ReportListItemSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    signed_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)


class ReportDetailOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    referral = serializers.UUIDField(source="referral.public_id")
    kind = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    failure_reason = serializers.CharField()
    requested_by = UserRefSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    generated_at = serializers.DateTimeField(allow_null=True)
    template_version = serializers.CharField()
    input_hash = serializers.CharField()
    pdf_sha256 = serializers.SerializerMethodField()
    pdf_size = serializers.SerializerMethodField()
    interpretation = serializers.CharField()
    signed_by = UserRefSerializer(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = UserRefSerializer(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    summary = serializers.SerializerMethodField()

    def get_pdf_sha256(self, report: ProgressReport) -> str | None:
        found = report_file(report)
        return found.sha256 if found is not None else None

    def get_pdf_size(self, report: ProgressReport) -> int | None:
        found = report_file(report)
        return found.size if found is not None else None

    def get_summary(self, report: ProgressReport) -> dict[str, Any] | None:
        return report.summary or None


def _report_response(report: ProgressReport, status_code: int = 200) -> Response:
    return Response(ReportDetailOutputSerializer(report).data, status=status_code)


# --- assessments ---------------------------------------------------------------------------------


class ReferralAssessmentListApi(APIView):
    parser_classes = [JSONParser]
    # Read by drf-spectacular too: the schema describes the page envelope and the cursor.
    pagination_class = AssessmentPagination

    @extend_schema_serializer(component_name="AssessmentCreateInput")
    class InputSerializer(StrictSerializer):
        instrument = serializers.ChoiceField(choices=Instrument.choices)
        # Any JSON values: the scoring names the item that is missing or out of range.
        answers = serializers.ListField(child=serializers.JSONField(allow_null=True), max_length=64)
        taken_at = ZonedDateTimeField()

    @extend_schema(
        operation_id="referrals_assessments_list",
        summary="The referral's assessments, oldest first",
        description="Every party to the referral may read them; reading them is audited.",
        responses={200: AssessmentOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        assessments = assessment_list_for_user(user=request.user, referral=referral)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(assessments, request, view=self)
        return paginator.get_paginated_response(AssessmentOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="referrals_assessments_create",
        summary="Record an assessment (clinicians)",
        description=(
            "Scored on the server: `total`, `band` and safety `flags` are added. Answers are "
            "positional (item 1 first): integers for the scales, true/false for the C-SSRS "
            "screener with null for Q3-Q5 when Q2 is no. A missing or out-of-range item is "
            "refused with 400 naming the item (`item`, 1-based). A safety flag alerts the "
            "clinic's clinicians and coordinators at once."
        ),
        request=InputSerializer,
        responses={201: AssessmentOutputSerializer, 404: NOT_FOUND, **REFUSED},
        examples=[
            OpenApiExample(
                "PHQ-9",
                {
                    "instrument": "phq9",
                    "answers": [2, 2, 1, 2, 1, 1, 1, 1, 0],
                    "taken_at": "2026-03-02T09:30:00-05:00",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assessment = services.assessment_record(
            actor=_user(request),
            referral=referral,
            instrument=data["instrument"],
            answers=data["answers"],
            taken_at=data["taken_at"],
        )
        return Response(
            AssessmentOutputSerializer(_reloaded_assessment(assessment)).data,
            status=status.HTTP_201_CREATED,
        )


def _reloaded_assessment(assessment: Assessment) -> Assessment:
    return Assessment.objects.select_related("recorded_by").get(pk=assessment.pk)


# --- infusion sessions ---------------------------------------------------------------------------


class VitalsInputSerializer(StrictSerializer):
    """Types only here: the ranges are the service's (``services.VITALS_RANGES``)."""

    minute = StrictIntegerField()
    systolic = StrictIntegerField()
    diastolic = StrictIntegerField()
    heart_rate = StrictIntegerField()
    spo2 = StrictIntegerField()


class AdverseEventInputSerializer(StrictSerializer):
    term = StrictCharField(max_length=services.TERM_MAX)
    severity = serializers.ChoiceField(choices=services.SEVERITIES)
    onset = StrictIntegerField(required=False, allow_null=True)
    resolution = StrictCharField(
        max_length=services.SHORT_TEXT_MAX, required=False, allow_blank=True
    )
    action = StrictCharField(max_length=services.SHORT_TEXT_MAX)


def _session_input(data: Mapping[str, Any]) -> services.SessionInput:
    return services.SessionInput(
        started_at=data["started_at"],
        weight_kg=data["weight_kg"],
        dose_mg_per_kg=data.get("dose_mg_per_kg"),
        duration_minutes=data.get("duration_minutes"),
        route=data.get("route") or Route.IV,
        status=data.get("status") or SessionStatus.COMPLETED,
        status_reason=data.get("status_reason", ""),
        vitals=tuple(services.VitalsReading(**reading) for reading in data.get("vitals", [])),
        cadss_peak=data.get("cadss_peak"),
        adverse_events=tuple(
            services.AdverseEvent(
                term=event["term"],
                severity=event["severity"],
                action=event["action"],
                onset=event.get("onset"),
                resolution=event.get("resolution", ""),
            )
            for event in data.get("adverse_events", [])
        ),
        dose_change_reason=data.get("dose_change_reason", ""),
    )


class ReferralInfusionListApi(APIView):
    parser_classes = [JSONParser]
    pagination_class = OldestFirstPagination

    @extend_schema_serializer(component_name="InfusionCreateInput")
    class InputSerializer(StrictSerializer):
        started_at = ZonedDateTimeField()
        weight_kg = StrictDecimalField(max_digits=5, decimal_places=1)
        dose_mg_per_kg = StrictDecimalField(
            max_digits=4, decimal_places=2, required=False, allow_null=True
        )
        duration_minutes = StrictIntegerField(required=False, allow_null=True)
        route = serializers.ChoiceField(choices=Route.choices, required=False)
        status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
        status_reason = StrictCharField(
            max_length=services.REASON_MAX, required=False, allow_blank=True
        )
        vitals = serializers.ListField(
            child=VitalsInputSerializer(), required=False, max_length=services.MAX_VITALS
        )
        cadss_peak = StrictIntegerField(required=False, allow_null=True)
        adverse_events = serializers.ListField(
            child=AdverseEventInputSerializer(),
            required=False,
            max_length=services.MAX_ADVERSE_EVENTS,
        )
        dose_change_reason = StrictCharField(
            max_length=services.REASON_MAX, required=False, allow_blank=True
        )

    @extend_schema(
        operation_id="referrals_infusions_list",
        summary="The referral's infusion sessions, in order",
        description="Every party to the referral may read them; reading them is audited.",
        responses={200: InfusionOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        sessions = infusion_session_list_for_user(user=request.user, referral=referral)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(sessions, request, view=self)
        return paginator.get_paginated_response(InfusionOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="referrals_infusions_create",
        summary="Record an infusion session (clinicians)",
        description=(
            "`total_mg` is computed (weight x dose). `status` is completed (default), stopped "
            "(stopped early) or held (not given), the last two with `status_reason`; dose and "
            "duration are required unless held. The first session given moves a scheduled "
            "referral to in_treatment; the 3rd and 6th infusions request an interim report. "
            "The clinic's pre-dose BP thresholds are stored with the session."
        ),
        request=InputSerializer,
        responses={201: InfusionOutputSerializer, 404: NOT_FOUND, **REFUSED},
        examples=[
            OpenApiExample(
                "A completed infusion",
                {
                    "started_at": "2026-03-02T10:00:00-05:00",
                    "weight_kg": 77.0,
                    "dose_mg_per_kg": 0.5,
                    "duration_minutes": 40,
                    "route": "iv",
                    "vitals": [
                        {
                            "minute": 0,
                            "systolic": 126,
                            "diastolic": 80,
                            "heart_rate": 72,
                            "spo2": 98,
                        },
                        {
                            "minute": 40,
                            "systolic": 141,
                            "diastolic": 88,
                            "heart_rate": 84,
                            "spo2": 97,
                        },
                    ],
                    "cadss_peak": 14,
                    "adverse_events": [
                        {
                            "term": "nausea",
                            "severity": "mild",
                            "onset": 30,
                            "resolution": "resolved by minute 60",
                            "action": "ondansetron 4 mg",
                        }
                    ],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = services.infusion_session_record(
            actor=_user(request), referral=referral, data=_session_input(serializer.validated_data)
        )
        reloaded = InfusionSession.objects.select_related("recorded_by").get(pk=session.pk)
        return Response(InfusionOutputSerializer(reloaded).data, status=status.HTTP_201_CREATED)


# --- reports -------------------------------------------------------------------------------------


class ReferralReportListApi(APIView):
    parser_classes = [JSONParser]
    pagination_class = NewestFirstPagination

    @extend_schema_serializer(component_name="ReportCreateInput")
    class InputSerializer(StrictSerializer):
        kind = serializers.ChoiceField(choices=ReportKind.choices)

    class CreatedSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="public_id")
        status = serializers.CharField()
        kind = serializers.CharField()
        version = serializers.IntegerField()

    @extend_schema(
        operation_id="referrals_reports_list",
        summary="The referral's progress reports, newest version first",
        description="The clinic sees every version; the referring practice signed ones only.",
        responses={200: ReportListItemSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        reports = report_list_for_user(user=request.user, referral=referral)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reports, request, view=self)
        return paginator.get_paginated_response(ReportListItemSerializer(page, many=True).data)

    @extend_schema(
        operation_id="referrals_reports_create",
        summary="Request a progress report (clinicians)",
        description=(
            "Records the next version as queued and generates it in the background (202). "
            "Poll `GET /api/v1/reports/{id}/` for `ready` (or `failed`)."
        ),
        request=InputSerializer,
        responses={202: CreatedSerializer, 404: NOT_FOUND, **REFUSED},
        examples=[OpenApiExample("Interim", {"kind": "interim"}, request_only=True)],
    )
    def post(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = services.report_request(
            actor=_user(request), referral=referral, kind=serializer.validated_data["kind"]
        )
        return Response(self.CreatedSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class ReportDetailApi(APIView):
    @extend_schema(
        operation_id="reports_retrieve",
        summary="A progress report: status, hashes, summary, sign-off",
        description=(
            "`summary` (once ready): infusions completed/planned, per instrument baseline, "
            "latest, change_percent, response, partial_response, remission, time_to_response, "
            "and the safety `flags`. Unsigned reports are visible to the clinic only. Audited."
        ),
        responses={200: ReportDetailOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, report_id: str) -> Response:
        return _report_response(report_detail_for_user(user=request.user, public_id=report_id))


class ReportUnavailable(ServiceError):
    status_code = 500
    default_code = "report_unavailable"


class PdfRenderer(BaseRenderer):
    """Lets a client ask for ``application/pdf``; errors are still JSON bodies."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data, default=str).encode()


class ReportPdfApi(APIView):
    renderer_classes = [JSONRenderer, PdfRenderer]

    @extend_schema(
        operation_id="reports_pdf",
        summary="The report's PDF",
        description=(
            "The signed PDF once signed (the draft before, for the clinic). Decrypted and "
            "checked against its stored SHA-256 (a tampered file fails closed); served as an "
            "attachment. Audited. 409 `report_not_ready` before it is generated."
        ),
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: NOT_FOUND, 409: NOT_READY},
    )
    def get(self, request: Request, report_id: str) -> StreamingHttpResponse:
        try:
            report, found, chunks = report_pdf_open_for_user(user=request.user, public_id=report_id)
        except (DecryptionError, EncryptedFileMissing):
            raise ReportUnavailable(
                "The PDF failed its integrity check and was not sent; the failure was recorded "
                "in the security log."
            ) from None
        return pdf_response(report, found.size, chunks)


def pdf_filename(report: ProgressReport) -> str:
    return f"progress-report-{report.referral.number}-v{report.version}.pdf"


def pdf_response(report: ProgressReport, size: int, chunks: Any) -> StreamingHttpResponse:
    """The PDF as an attachment (never inline) that no cache keeps."""
    return file_download_response(
        chunks, content_type="application/pdf", filename=pdf_filename(report), size=size
    )


class ReportSignApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="ReportSignInput")
    class InputSerializer(StrictSerializer):
        interpretation = StrictCharField(max_length=services.INTERPRETATION_MAX)

    @extend_schema(
        operation_id="reports_sign",
        summary="Add the interpretation and sign (clinicians)",
        description=(
            "The signed PDF is rendered from the report's stored inputs and delivered to the "
            "referring practice. Signing the final report completes the referral's treatment. "
            "409 `already_signed` / `report_not_ready`."
        ),
        request=InputSerializer,
        responses={200: ReportDetailOutputSerializer, 404: NOT_FOUND, **REFUSED},
        examples=[
            OpenApiExample(
                "Sign",
                {"interpretation": "Response after six infusions. Plan: maintenance in 4 weeks."},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, report_id: str) -> Response:
        report = report_get_for_user(user=request.user, public_id=report_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        signed = services.report_sign(
            actor=_user(request),
            report=report,
            interpretation=serializer.validated_data["interpretation"],
        )
        return _report_response(
            report_detail_for_user(user=request.user, public_id=signed.public_id)
        )


class ReportAcknowledgeApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="ReportAcknowledgeInput")
    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="reports_acknowledge",
        summary="Acknowledge a delivered report (the referring provider)",
        description=(
            "Acknowledging the final report closes the referral (the loop is closed). "
            "409 `already_acknowledged`."
        ),
        request=InputSerializer,
        responses={200: ReportDetailOutputSerializer, 404: NOT_FOUND, **REFUSED},
    )
    def post(self, request: Request, report_id: str) -> Response:
        report = report_get_for_user(user=request.user, public_id=report_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        acknowledged = services.report_acknowledge(actor=_user(request), report=report)
        return _report_response(
            report_detail_for_user(user=request.user, public_id=acknowledged.public_id)
        )


class ReportFhirApi(APIView):
    @extend_schema(
        operation_id="reports_fhir",
        summary="The report as a FHIR R4 Bundle",
        description=(
            "A `collection` Bundle: DiagnosticReport (preliminary until signed), an Observation "
            "per score (LOINC 44261-6 PHQ-9 total inside a 44249-1 panel, 70274-6 GAD-7 total), "
            "the DocumentReference of the PDF and the Patient. Audited. 409 before it is ready."
        ),
        responses={(200, "application/json"): OpenApiTypes.OBJECT, 404: NOT_FOUND, 409: NOT_READY},
    )
    def get(self, request: Request, report_id: str) -> Response:
        report = report_detail_for_user(user=request.user, public_id=report_id)
        if report.input_snapshot is None:
            raise Conflict("The report is not ready yet.", code="report_not_ready")
        snapshot = services.report_verified_snapshot(report)
        return Response(report_fhir_bundle(report, snapshot))
