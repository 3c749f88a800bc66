"""The referral API (DESIGN.md section 6): thin views over the selectors and services.

Inputs are strict: unknown fields, wrong JSON types (a string for a number, 1 for true) and
out-of-range values are refused with 400 before any service runs. The role rules (who may set the
provider, who may take which action) live in the services.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import User
from portal.api.errors import AttachmentUnavailable
from portal.api.parsers import MultiPartParser
from portal.core.downloads import file_download_response
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from portal.uploads import EXTENSIONS
from referrals import permissions, services, transitions
from referrals.fhir import referral_fhir_bundle
from referrals.models import (
    CONTRAINDICATION_KEYS,
    Adherence,
    Referral,
    ReferralStatus,
    Sex,
    TrialOutcome,
)
from referrals.permissions import access_for
from referrals.selectors import (
    ReferralDetail,
    attachment_list_for_user,
    attachment_open_for_user,
    referral_detail_for_user,
    referral_events_for_user,
    referral_get_for_user,
    referral_list_for_user,
)
from referrals.sla import is_overdue

# ICD-10-CM depressive episodes: F32.x (single episode, including F32.A), F33.x (recurrent),
# F31.x (bipolar; bipolar depression is referred too). One or two characters after the dot.
DIAGNOSIS_CODE_PATTERN = re.compile(r"\AF3[123]\.(?:[0-9]{1,2}|A)\Z")
PHONE_PATTERN = re.compile(r"\A\+?[0-9 ().-]{7,32}\Z")
OLDEST_BIRTH_DATE = datetime.date(1900, 1, 1)
# C0 and C1 control characters other than tab, line feed and carriage return: never typed text,
# and a way to smuggle terminal escapes into logs and exports. NUL (which PostgreSQL cannot store)
# and lone surrogates are refused by DRF's CharField itself, with their own messages.
CONTROL_CHARACTERS = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# --- strict input fields -------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """Only a JSON string (DRF would turn 14 into "14"), without control characters."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if CONTROL_CHARACTERS.search(data):
            raise ValidationError(
                "Control characters are not allowed (tab and line breaks are).", code="invalid"
            )
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Only a JSON integer (DRF would accept "14", 14.0 and true)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true or false (DRF would accept 1, "yes", "on")."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise ValidationError("Must be true or false.", code="invalid")
        return data


class StrictDecimalField(serializers.DecimalField):
    """A JSON number (or a numeric string), never a boolean."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare, so nothing can be mass-assigned by accident."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


# --- referral content ----------------------------------------------------------------------------


class PatientInputSerializer(StrictSerializer):
    given_name = StrictCharField(max_length=100, required=False, allow_blank=True)
    family_name = StrictCharField(max_length=100, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True, input_formats=["iso-8601"])
    sex = serializers.ChoiceField(choices=Sex.choices, required=False, allow_blank=True)
    phone = StrictCharField(max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)

    def validate_birth_date(self, value: datetime.date | None) -> datetime.date | None:
        if value is not None and not OLDEST_BIRTH_DATE <= value <= timezone.localdate():
            raise ValidationError("Must be a date between 1900-01-01 and today.")
        return value

    def validate_phone(self, value: str) -> str:
        if value and not PHONE_PATTERN.match(value):
            raise ValidationError("Digits, spaces and + ( ) - . only, 7 to 32 characters.")
        return value


class PriorTrialInputSerializer(StrictSerializer):
    drug = StrictCharField(max_length=200, required=False, allow_blank=True)
    max_daily_dose_mg = StrictDecimalField(
        max_digits=8, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    weeks_at_dose = StrictDecimalField(
        max_digits=5,
        decimal_places=1,
        min_value=0,
        max_value=520,
        required=False,
        allow_null=True,
    )
    adherence = serializers.ChoiceField(choices=Adherence.choices, required=False, allow_blank=True)
    outcome = serializers.ChoiceField(
        choices=TrialOutcome.choices, required=False, allow_blank=True
    )


class ContraindicationsInputSerializer(StrictSerializer):
    psychosis = StrictBooleanField(required=False, allow_null=True)
    substance_use_disorder = StrictBooleanField(required=False, allow_null=True)
    uncontrolled_hypertension = StrictBooleanField(required=False, allow_null=True)
    vascular_aneurysm_or_avm = StrictBooleanField(required=False, allow_null=True)
    pregnancy = StrictBooleanField(required=False, allow_null=True)
    ketamine_hypersensitivity = StrictBooleanField(required=False, allow_null=True)


class InsuranceInputSerializer(StrictSerializer):
    payer = StrictCharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    member_id = StrictCharField(max_length=100, required=False, allow_blank=True, allow_null=True)
    group_number = StrictCharField(
        max_length=100, required=False, allow_blank=True, allow_null=True
    )


class ReferralContentInputSerializer(StrictSerializer):
    """The referral's content, every field optional (a draft may be incomplete; PATCH sends
    only what changes: objects merge key by key, lists replace)."""

    patient = PatientInputSerializer(required=False)
    provider = serializers.UUIDField(required=False, allow_null=True)
    urgent = StrictBooleanField(required=False)
    reason = StrictCharField(max_length=5000, required=False, allow_blank=True)
    diagnosis_codes = serializers.ListField(
        child=StrictCharField(max_length=10), required=False, max_length=10
    )
    episode_months = StrictIntegerField(min_value=0, max_value=600, required=False, allow_null=True)
    prior_trials = serializers.ListField(
        child=PriorTrialInputSerializer(), required=False, max_length=20
    )
    current_medications = StrictCharField(max_length=2000, required=False, allow_blank=True)
    allergies = StrictCharField(max_length=2000, required=False, allow_blank=True)
    office_bp_systolic = StrictIntegerField(
        min_value=50, max_value=300, required=False, allow_null=True
    )
    office_bp_diastolic = StrictIntegerField(
        min_value=20, max_value=200, required=False, allow_null=True
    )
    office_heart_rate = StrictIntegerField(
        min_value=20, max_value=250, required=False, allow_null=True
    )
    phq9_answers = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=3, allow_null=True),
        required=False,
        allow_null=True,
        min_length=9,
        max_length=9,
        help_text="Nine item answers 0-3 (item 1 first); null for an item not answered yet.",
    )
    contraindications = ContraindicationsInputSerializer(required=False)
    suicidal_intent = StrictBooleanField(required=False)
    insurance = InsuranceInputSerializer(required=False)
    consent_attested = StrictBooleanField(required=False)

    def validate_diagnosis_codes(self, value: list[str]) -> list[str]:
        codes: list[str] = []
        for code in value:
            normalised = code.strip().upper()
            if not DIAGNOSIS_CODE_PATTERN.match(normalised):
                raise ValidationError(
                    f"{code!r} is not an ICD-10 depressive episode code (F31.x, F32.x, F33.x)."
                )
            if normalised not in codes:
                codes.append(normalised)
        return codes


def _content(validated: Mapping[str, Any]) -> dict[str, Any]:
    """Serializer output as service input: nested serializers give OrderedDicts of their own."""
    data = dict(validated)
    for key in ("patient", "contraindications", "insurance"):
        if key in data and data[key] is not None:
            data[key] = dict(data[key])
    if data.get("prior_trials") is not None:
        data["prior_trials"] = [dict(trial) for trial in data["prior_trials"]]
    return data


# --- output --------------------------------------------------------------------------------------


class OrganizationRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()


class UserRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    full_name = serializers.CharField()


class PatientOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.CharField(help_text="YYYY-MM-DD, empty while a draft lacks it.")
    sex = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()


class PriorTrialOutputSerializer(serializers.Serializer):
    drug = serializers.CharField()
    max_daily_dose_mg = serializers.DecimalField(
        max_digits=8, decimal_places=2, coerce_to_string=False, allow_null=True
    )
    weeks_at_dose = serializers.DecimalField(
        max_digits=5, decimal_places=1, coerce_to_string=False, allow_null=True
    )
    adherence = serializers.CharField()
    outcome = serializers.CharField()


class ScreeningOutputSerializer(serializers.Serializer):
    adequate_failed_trials = serializers.IntegerField()
    trd = serializers.BooleanField()
    phq9_total = serializers.IntegerField(allow_null=True)
    phq9_band = serializers.CharField(allow_null=True)
    safety_flag = serializers.BooleanField()
    contraindication_flags = serializers.ListField(child=serializers.CharField())
    adequate_trial_weeks = serializers.IntegerField(help_text="The clinic setting used.")


class SlaOutputSerializer(serializers.Serializer):
    triage_business_days = serializers.IntegerField()
    triage_due_at = serializers.DateTimeField(source="referral.triage_due_at", allow_null=True)
    overdue = serializers.BooleanField()


class DuplicateOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    number = serializers.CharField()
    status = serializers.CharField()
    patient = serializers.UUIDField(source="patient.public_id")


class ReferralListItemSerializer(serializers.Serializer):
    """A list row: no PHI (the number identifies the referral; the detail shows the patient)."""

    id = serializers.UUIDField(source="public_id")
    number = serializers.CharField()
    status = serializers.CharField()
    urgent = serializers.BooleanField()
    practice = OrganizationRefSerializer()
    clinic = OrganizationRefSerializer()
    provider = UserRefSerializer()
    created_by = UserRefSerializer()
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    triage_due_at = serializers.DateTimeField(allow_null=True)
    overdue = serializers.SerializerMethodField()
    consult_at = serializers.DateTimeField(allow_null=True)
    allowed_actions = serializers.SerializerMethodField()

    def get_overdue(self, referral: Referral) -> bool:
        return is_overdue(referral, self.context["now"])

    def get_allowed_actions(self, referral: Referral) -> list[str]:
        parties = permissions.referral_parties(self.context["access"], referral)
        return transitions.allowed_actions(parties, referral, self.context["now"])


class ReferralDetailOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="referral.public_id")
    number = serializers.CharField(source="referral.number")
    status = serializers.CharField(source="referral.status")
    urgent = serializers.BooleanField(source="referral.urgent")
    practice = OrganizationRefSerializer(source="referral.practice")
    clinic = OrganizationRefSerializer(source="referral.clinic")
    provider = UserRefSerializer(source="referral.provider")
    created_by = UserRefSerializer(source="referral.created_by")
    patient = PatientOutputSerializer(source="referral.patient")
    reason = serializers.CharField(source="referral.reason")
    diagnosis_codes = serializers.ListField(
        source="referral.diagnosis_codes", child=serializers.CharField()
    )
    episode_months = serializers.IntegerField(source="referral.episode_months", allow_null=True)
    prior_trials = PriorTrialOutputSerializer(many=True)
    current_medications = serializers.CharField(source="referral.current_medications")
    allergies = serializers.CharField(source="referral.allergies")
    office_bp_systolic = serializers.IntegerField(
        source="referral.office_bp_systolic", allow_null=True
    )
    office_bp_diastolic = serializers.IntegerField(
        source="referral.office_bp_diastolic", allow_null=True
    )
    office_heart_rate = serializers.IntegerField(
        source="referral.office_heart_rate", allow_null=True
    )
    phq9_answers = serializers.ListField(
        source="referral.phq9_answers", child=serializers.IntegerField(allow_null=True)
    )
    contraindications = serializers.DictField(
        source="referral.contraindications", child=serializers.BooleanField()
    )
    suicidal_intent = serializers.BooleanField(source="referral.suicidal_intent")
    insurance = serializers.DictField(source="referral.insurance", child=serializers.CharField())
    consent_attested = serializers.BooleanField(source="referral.consent_attested")
    screening = ScreeningOutputSerializer()
    allowed_actions = serializers.ListField(child=serializers.CharField())
    triage_due_at = serializers.DateTimeField(source="referral.triage_due_at", allow_null=True)
    overdue = serializers.BooleanField()
    sla = SlaOutputSerializer(source="*")
    thread = serializers.UUIDField(allow_null=True)
    fhir_task_status = serializers.CharField()
    x360_transaction = serializers.CharField(allow_null=True)
    provider_signed_off_at = serializers.DateTimeField(
        source="referral.provider_signed_off_at", allow_null=True
    )
    submitted_at = serializers.DateTimeField(source="referral.submitted_at", allow_null=True)
    consult_at = serializers.DateTimeField(source="referral.consult_at", allow_null=True)
    open_question = serializers.CharField(allow_null=True)
    decline_reason = serializers.CharField(source="referral.decline_reason")
    decline_advice = serializers.CharField(source="referral.decline_advice")
    cancel_reason = serializers.CharField(source="referral.cancel_reason")
    possible_duplicates = DuplicateOutputSerializer(many=True, allow_null=True)
    crisis_resources = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="referral.created_at")
    updated_at = serializers.DateTimeField(source="referral.updated_at")

    def get_crisis_resources(self, detail: ReferralDetail) -> str | None:
        if not detail.referral.suicidal_intent:
            return None
        return CRISIS_RESOURCES


CRISIS_RESOURCES = (
    "Active suicidal intent is an emergency, not a referral: if the patient is in immediate "
    "danger call 911 (or local emergency services); the 988 Suicide & Crisis Lifeline is "
    "available by call or text at 988. The clinic has been alerted to contact you today."
)


def _detail_response(user: Any, referral: Referral, status_code: int = 200) -> Response:
    detail = referral_detail_for_user(user=user, public_id=referral.public_id)
    return Response(ReferralDetailOutputSerializer(detail).data, status=status_code)


# --- pagination ----------------------------------------------------------------------------------


class NewestFirstPagination(CursorPagination):
    """Cursor pages: no COUNT over a practice's whole history, stable under inserts."""

    ordering = "-created_at"
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class OldestFirstPagination(NewestFirstPagination):
    ordering = "created_at"


# --- examples ------------------------------------------------------------------------------------

REFERRAL_EXAMPLE = {
    "patient": {
        "given_name": "Dana",
        "family_name": "Example",
        "birth_date": "1984-05-17",
        "sex": "female",
        "phone": "+1 407 555 0100",
        "email": "dana@example.org",
    },
    "reason": "Recurrent depression, two failed adequate trials; requesting ketamine evaluation.",
    "diagnosis_codes": ["F33.2"],
    "episode_months": 14,
    "prior_trials": [
        {
            "drug": "sertraline",
            "max_daily_dose_mg": 200,
            "weeks_at_dose": 8,
            "adherence": "good",
            "outcome": "no_response",
        },
        {
            "drug": "venlafaxine XR",
            "max_daily_dose_mg": 225,
            "weeks_at_dose": 6,
            "adherence": "good",
            "outcome": "partial_response",
        },
    ],
    "current_medications": "bupropion XL 300 mg daily",
    "allergies": "none known",
    "office_bp_systolic": 128,
    "office_bp_diastolic": 82,
    "office_heart_rate": 76,
    "phq9_answers": [3, 3, 2, 3, 2, 2, 2, 1, 0],
    "contraindications": dict.fromkeys(CONTRAINDICATION_KEYS, False),
    "suicidal_intent": False,
    "insurance": {"payer": "Florida Blue", "member_id": "XJH123456789"},
    "consent_attested": True,
}

INCOMPLETE_EXAMPLE = OpenApiExample(
    "Incomplete at submission",
    status_codes=["400"],
    response_only=True,
    value={
        "detail": "The referral is incomplete; see the fields.",
        "code": "incomplete",
        "fields": {"patient.birth_date": "Required.", "phq9_answers.8": "Item 9 is required."},
    },
)
INVALID_TRANSITION_EXAMPLE = OpenApiExample(
    "Not from this state",
    status_codes=["409"],
    response_only=True,
    value={
        "detail": "A referral that is accepted cannot be given the action 'request-info'.",
        "code": "invalid_transition",
        "status": "accepted",
        "allowed_actions": ["schedule"],
    },
)
NOT_FOUND = OpenApiResponse(description="No such referral, or not visible to you (the same).")


# --- referrals -----------------------------------------------------------------------------------


class ReferralListCreateApi(APIView):
    parser_classes = [JSONParser]
    # Read by drf-spectacular too: the schema describes the page envelope and the cursor.
    pagination_class = NewestFirstPagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.CharField(required=False, max_length=200)
        urgent = serializers.BooleanField(required=False, allow_null=True, default=None)
        overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
        q = serializers.CharField(required=False, max_length=20, allow_blank=True)

        def validate_status(self, value: str) -> list[str]:
            statuses = [part.strip() for part in value.split(",") if part.strip()]
            unknown = [part for part in statuses if part not in ReferralStatus.values]
            if unknown:
                raise ValidationError(f"Unknown status: {', '.join(unknown)}.")
            return statuses

    @extend_schema(
        operation_id="referrals_list",
        summary="Referrals visible to you, newest first",
        description=(
            "Practice members see their practice's referrals; clinic staff see referrals to "
            "their clinic once submitted. Cursor-paginated (`results`, `next`, `previous`). "
            "Rows carry no patient data; open the detail for it."
        ),
        parameters=[
            OpenApiParameter("status", str, description="One or more statuses, comma-separated."),
            OpenApiParameter("urgent", bool),
            OpenApiParameter("overdue", bool, description="Triage past its due time."),
            OpenApiParameter("q", str, description="Part of the referral number."),
            OpenApiParameter("page_size", int, description="1-100, default 25."),
        ],
        responses={
            200: ReferralListItemSerializer(many=True),
            400: OpenApiTypes.OBJECT,
            404: OpenApiResponse(description="The cursor is not valid."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        now = timezone.now()
        referrals = referral_list_for_user(
            user=request.user,
            status=filters.validated_data.get("status"),
            urgent=filters.validated_data.get("urgent"),
            overdue=filters.validated_data.get("overdue"),
            q=filters.validated_data.get("q"),
            now=now,
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(referrals, request, view=self)
        context = {"access": access_for(request.user), "now": now}
        data = ReferralListItemSerializer(page, many=True, context=context).data
        return paginator.get_paginated_response(data)

    @extend_schema_serializer(component_name="ReferralCreateInput")
    class InputSerializer(ReferralContentInputSerializer):
        patient_id = serializers.UUIDField(
            required=False,
            allow_null=True,
            help_text="An existing patient of the practice (a confirmed duplicate).",
        )
        practice = serializers.UUIDField(
            required=False, allow_null=True, help_text="Only if you belong to several practices."
        )
        clinic = serializers.UUIDField(
            required=False, allow_null=True, help_text="Only if the portal serves several clinics."
        )

    @extend_schema(
        operation_id="referrals_create",
        summary="Create a draft referral",
        description=(
            "Every field is optional for a draft. Practice staff must name the `provider` "
            "(a provider of their practice) and the provider signs off before staff submit; a "
            "provider refers as themself. `status`, `practice` ownership and numbers are set by "
            "the server; unknown fields are refused."
        ),
        request=InputSerializer,
        responses={201: ReferralDetailOutputSerializer, 400: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("A complete referral", value=REFERRAL_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        referral = services.referral_create(
            actor=_user(request), data=_content(serializer.validated_data)
        )
        return _detail_response(request.user, referral, status.HTTP_201_CREATED)


class ReferralDetailApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="referrals_retrieve",
        summary="A referral with screening, allowed actions and service level",
        description=(
            "`screening` is computed (never a decision); `allowed_actions` lists what you may "
            "do now; `fhir_task_status` and `x360_transaction` express the state to other "
            "systems; `possible_duplicates` (practice only) lists referrals whose patient has "
            "the same name and birth date. Reading it is audited."
        ),
        responses={200: ReferralDetailOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        detail = referral_detail_for_user(user=request.user, public_id=referral_id)
        return Response(ReferralDetailOutputSerializer(detail).data)

    @extend_schema(
        operation_id="referrals_partial_update",
        summary="Edit a draft, or while information was requested",
        description=(
            "Send only what changes: `patient`, `contraindications` and `insurance` merge key by "
            "key; lists replace. 409 `not_editable` once submitted. An edit by staff withdraws "
            "the provider's sign-off."
        ),
        request=ReferralContentInputSerializer,
        responses={
            200: ReferralDetailOutputSerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            409: OpenApiTypes.OBJECT,
        },
        examples=[
            OpenApiExample(
                "Add the PHQ-9",
                value={"phq9_answers": [3, 3, 2, 3, 2, 2, 2, 1, 0]},
                request_only=True,
            )
        ],
    )
    def patch(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = ReferralContentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = services.referral_update(
            actor=_user(request), referral=referral, data=_content(serializer.validated_data)
        )
        return _detail_response(request.user, updated)


def _user(request: Request) -> User:
    """The signed-in user (the default permission admits no one else)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


# --- actions -------------------------------------------------------------------------------------


class _ReferralActionApi(APIView):
    """POST /api/v1/referrals/{id}/{action}/: the body is the action's input (often empty)."""

    parser_classes = [JSONParser]
    action_name: ClassVar[str] = ""

    @extend_schema_serializer(component_name="ReferralActionInput")
    class InputSerializer(StrictSerializer):
        pass

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        raise NotImplementedError

    def post(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = self.perform(_user(request), referral, dict(serializer.validated_data))
        return _detail_response(request.user, updated)


def _action_schema(
    action: str, summary: str, description: str, request: Any, example: Any = None
) -> Any:
    examples = [INVALID_TRANSITION_EXAMPLE]
    if example is not None:
        examples.append(OpenApiExample(f"{action} body", value=example, request_only=True))
    return extend_schema(
        operation_id=f"referrals_{action.replace('-', '_')}",
        summary=summary,
        description=description
        + " 403 when you never take this action, 409 `invalid_transition` from another state.",
        request=request,
        responses={
            200: ReferralDetailOutputSerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            409: OpenApiTypes.OBJECT,
        },
        examples=examples,
    )


class ReferralSignOffApi(_ReferralActionApi):
    @_action_schema(
        "sign-off",
        "The provider signs off a draft entered by staff",
        "Referring provider only, while a draft (or information was requested).",
        None,
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_sign_off(actor=user, referral=referral)


class ReferralSubmitApi(_ReferralActionApi):
    @extend_schema_serializer(component_name="ReferralSubmitInput")
    class InputSerializer(StrictSerializer):
        answer = StrictCharField(
            required=False,
            allow_blank=True,
            max_length=5000,
            help_text="Required when the clinic requested information.",
        )

    @_action_schema(
        "submit",
        "Submit a draft, or answer the clinic's question",
        "A draft must be complete (400 `incomplete` names each missing field) and goes to "
        "`submitted`; with information requested, `answer` is required and the referral returns "
        "to `in_review`. Practice staff may submit once the provider has signed off.",
        InputSerializer,
        {"answer": "The last psychiatric evaluation is attached."},
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_submit(actor=user, referral=referral, answer=data.get("answer"))


class ReferralReviewApi(_ReferralActionApi):
    @_action_schema("review", "A coordinator picks the referral up", "Coordinators.", None)
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_review(actor=user, referral=referral)


class ReferralRequestInfoApi(_ReferralActionApi):
    @extend_schema_serializer(component_name="ReferralRequestInfoInput")
    class InputSerializer(StrictSerializer):
        question = StrictCharField(max_length=5000)

    @_action_schema(
        "request-info",
        "Ask the referrer for information",
        "Coordinators, before acceptance.",
        InputSerializer,
        {"question": "Please send the most recent psychiatric evaluation."},
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_request_info(
            actor=user, referral=referral, question=data["question"]
        )


class ReferralAcceptApi(_ReferralActionApi):
    @_action_schema("accept", "Accept after triage", "Coordinators, from in_review.", None)
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_accept(actor=user, referral=referral)


class ReferralDeclineApi(_ReferralActionApi):
    @extend_schema_serializer(component_name="ReferralDeclineInput")
    class InputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=5000)
        advice = StrictCharField(max_length=5000, required=False, allow_blank=True)

    @_action_schema(
        "decline",
        "Decline, with a reason and advice",
        "Coordinators, before acceptance.",
        InputSerializer,
        {"reason": "Active psychotic features.", "advice": "Refer to early psychosis service."},
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_decline(
            actor=user, referral=referral, reason=data["reason"], advice=data.get("advice", "")
        )


class ReferralScheduleApi(_ReferralActionApi):
    @extend_schema_serializer(component_name="ReferralScheduleInput")
    class InputSerializer(StrictSerializer):
        consult_at = serializers.DateTimeField(
            help_text="ISO 8601 with a time zone, in the future."
        )

        def validate_consult_at(self, value: datetime.datetime) -> datetime.datetime:
            raw = self.initial_data.get("consult_at")
            if isinstance(raw, str) and not re.search(r"(Z|[+-]\d{2}:?\d{2})\Z", raw.strip()):
                raise ValidationError("Include the time zone (e.g. 2026-03-02T14:30:00-05:00).")
            return value

    @_action_schema(
        "schedule",
        "Schedule (or move) the consult",
        "Coordinators, once accepted.",
        InputSerializer,
        {"consult_at": "2026-03-02T14:30:00-05:00"},
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_schedule(
            actor=user, referral=referral, consult_at=data["consult_at"]
        )


class ReferralNoShowApi(_ReferralActionApi):
    @_action_schema(
        "no-show",
        "The patient missed the consult",
        "Coordinators, once the consult time has come; the referral returns to accepted for a "
        "new consult.",
        None,
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_record_no_show(actor=user, referral=referral)


class ReferralStartTreatmentApi(_ReferralActionApi):
    @_action_schema(
        "start-treatment", "Treatment started", "Clinicians, at the first infusion.", None
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_start_treatment(actor=user, referral=referral)


class ReferralCompleteApi(_ReferralActionApi):
    @_action_schema(
        "complete", "Treatment completed", "Clinicians, when the final report is signed.", None
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_complete(actor=user, referral=referral)


class ReferralAcknowledgeApi(_ReferralActionApi):
    @_action_schema(
        "acknowledge",
        "The referrer acknowledges the outcome",
        "The referring provider, once completed: the loop is closed.",
        None,
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_acknowledge(actor=user, referral=referral)


class ReferralCancelApi(_ReferralActionApi):
    @extend_schema_serializer(component_name="ReferralCancelInput")
    class InputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=5000)

    @_action_schema(
        "cancel",
        "Cancel, with a reason",
        "The referring provider or their practice staff, any time before completion.",
        InputSerializer,
        {"reason": "The patient moved out of state."},
    )
    def post(self, request: Request, referral_id: str) -> Response:
        return super().post(request, referral_id)

    def perform(self, user: User, referral: Referral, data: dict[str, Any]) -> Referral:
        return services.referral_cancel(actor=user, referral=referral, reason=data["reason"])


# --- timeline, attachments, FHIR -----------------------------------------------------------------


class ReferralEventListApi(APIView):
    pagination_class = OldestFirstPagination

    @extend_schema_serializer(component_name="ReferralEvent")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="public_id")
        kind = serializers.CharField()
        actor = UserRefSerializer(allow_null=True)
        from_status = serializers.CharField()
        to_status = serializers.CharField()
        note = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="referrals_events_list",
        summary="The referral's timeline, oldest first",
        description="Notes carry questions, answers and reasons; reading them is audited.",
        responses={200: OutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        events = referral_events_for_user(user=request.user, referral=referral)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ReferralAttachmentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    original_name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    scan_status = serializers.CharField()
    uploaded_by = UserRefSerializer()
    created_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, attachment: Any) -> str:
        return f"/api/v1/attachments/{attachment.public_id}/download/"


class ReferralAttachmentListApi(APIView):
    parser_classes = [MultiPartParser]
    pagination_class = OldestFirstPagination

    @extend_schema_serializer(component_name="ReferralAttachmentUploadInput")
    class InputSerializer(StrictSerializer):
        file = serializers.FileField(allow_empty_file=True)

    @extend_schema(
        operation_id="referrals_attachments_list",
        summary="The referral's attachments",
        responses={200: ReferralAttachmentOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        attachments = attachment_list_for_user(user=request.user, referral=referral)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(attachments, request, view=self)
        return paginator.get_paginated_response(
            ReferralAttachmentOutputSerializer(page, many=True).data
        )

    @extend_schema(
        operation_id="referrals_attachments_create",
        summary='Upload a record (multipart, field "file")',
        description=(
            "PDF, PNG, JPEG or plain UTF-8 text, recognised by content; 25 MB at most; scanned "
            "for malware; stored encrypted with its SHA-256. 413 too large, 415 type refused. "
            "While the referral is a draft or information was requested."
        ),
        request={"multipart/form-data": InputSerializer},
        responses={
            201: ReferralAttachmentOutputSerializer,
            400: OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            413: OpenApiTypes.OBJECT,
            415: OpenApiTypes.OBJECT,
        },
    )
    def post(self, request: Request, referral_id: str) -> Response:
        referral = referral_get_for_user(user=request.user, public_id=referral_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        attachment = services.attachment_upload(
            actor=_user(request),
            referral=referral,
            uploaded_file=serializer.validated_data["file"],
        )
        return Response(
            ReferralAttachmentOutputSerializer(attachment).data, status=status.HTTP_201_CREATED
        )


class AttachmentDownloadApi(APIView):
    @extend_schema(
        operation_id="attachments_download",
        summary="The attachment's bytes",
        description=(
            "Served as `Content-Disposition: attachment`; decrypted and checked against the "
            "stored SHA-256 (a tampered file fails closed). Audited."
        ),
        # The stored type, one of the upload allow-list (portal.uploads).
        responses={
            **{(200, media_type): OpenApiTypes.BINARY for media_type in EXTENSIONS},
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, attachment_id: str) -> StreamingHttpResponse:
        try:
            attachment, chunks = attachment_open_for_user(
                user=request.user, public_id=attachment_id
            )
        except (DecryptionError, EncryptedFileMissing):
            # Logged as a security event by the storage; nothing of the file is sent.
            raise AttachmentUnavailable(
                "The file failed its integrity check and was not sent; the clinic has been "
                "told through the security log."
            ) from None
        # The storage verified the whole file against its SHA-256 before returning, and checks
        # every chunk again while streaming; the response closes the stream when done.
        return file_download_response(
            chunks,
            content_type=attachment.content_type,
            filename=attachment.original_name,
            size=attachment.size,
        )


class ReferralFhirApi(APIView):
    @extend_schema(
        operation_id="referrals_fhir",
        summary="The referral as a FHIR R4 Bundle",
        description=(
            "A `collection` Bundle with the ServiceRequest (the referral), its Task (workflow "
            "status and 360X step) and the Patient. Reading it is audited."
        ),
        responses={(200, "application/json"): OpenApiTypes.OBJECT, 404: NOT_FOUND},
    )
    def get(self, request: Request, referral_id: str) -> Response:
        detail = referral_detail_for_user(user=request.user, public_id=referral_id)
        return Response(referral_fhir_bundle(detail))
