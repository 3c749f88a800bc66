"""``/api/v1/audit-events/``: the audit trail for clinic admins, as JSON pages or as CSV."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import User
from portal.audit.exports import audit_events_csv_export
from portal.audit.forms import OBJECT_TYPE_REGEX
from portal.audit.models import AuditEvent
from portal.audit.selectors import (
    AuditEventFilters,
    audit_event_list_for_user,
    audit_trail_check_access,
)


def signed_in_user(request: Request) -> User:
    if not isinstance(request.user, User):
        raise exceptions.NotAuthenticated()
    return request.user


class AuditEventFilterSerializer(serializers.Serializer[Any]):
    actor = serializers.UUIDField(required=False, help_text="Public id of the acting user.")
    object_type = serializers.RegexField(OBJECT_TYPE_REGEX, max_length=64, required=False)
    object_id = serializers.CharField(max_length=64, required=False)
    referral = serializers.UUIDField(
        required=False, help_text="Events about this referral, or naming it in details."
    )
    patient = serializers.UUIDField(
        required=False, help_text="Events about this patient, or naming them in details."
    )

    def filters(self) -> AuditEventFilters:
        data = self.validated_data
        return AuditEventFilters(
            actor=data.get("actor"),
            object_type=data.get("object_type", ""),
            object_id=data.get("object_id", ""),
            referral=data.get("referral"),
            patient=data.get("patient"),
        )


def _filters_from(request: Request) -> AuditEventFilters:
    serializer = AuditEventFilterSerializer(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.filters()


FILTER_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.UUID if kind == "uuid" else OpenApiTypes.STR)
    for name, kind in (
        ("actor", "uuid"),
        ("object_type", "str"),
        ("object_id", "str"),
        ("referral", "uuid"),
        ("patient", "uuid"),
    )
]


# Errors are {"detail", "code"}: 400 a filter is malformed, 403 not a clinic admin.
REFUSED = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="A filter is not valid."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="Only clinic admins read the trail."),
}


class AuditEventCursorPagination(CursorPagination):
    """Newest first by sequence, by cursor: no COUNT over the whole trail."""

    ordering = ("-sequence",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AuditEventOutputSerializer(serializers.Serializer[Any]):
    sequence = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = serializers.UUIDField(source="actor.public_id", allow_null=True)
    actor_label = serializers.CharField()
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    outcome = serializers.CharField()
    request_id = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    details = serializers.DictField()
    sealed = serializers.SerializerMethodField()

    def get_sealed(self, event: AuditEvent) -> bool:
        return hasattr(event, "seal")


class AuditEventListApi(APIView):
    pagination_class = AuditEventCursorPagination

    @extend_schema(
        operation_id="audit_events_list",
        summary="The audit trail, newest first (clinic admins)",
        description=(
            "Filter by acting user, object, referral or patient (public ids). Cursor-paginated "
            "(`cursor`, `page_size` up to 200). Anyone but a clinic admin gets 403 "
            "`permission_denied`, and the refusal is itself audited."
        ),
        parameters=FILTER_PARAMETERS,
        responses={
            200: AuditEventOutputSerializer(many=True),
            **REFUSED,
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="The cursor is not valid."),
        },
    )
    def get(self, request: Request) -> Response:
        user = signed_in_user(request)
        audit_trail_check_access(user=user)
        events = audit_event_list_for_user(user=user, filters=_filters_from(request))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        data = AuditEventOutputSerializer(page or [], many=True).data
        return paginator.get_paginated_response(data)


class _FirstRendererNegotiation(BaseContentNegotiation):
    """The CSV is written by the view itself; errors are JSON whatever the Accept header says
    (a client asking for text/csv must still be able to read a 403 or 400)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class AuditEventExportApi(APIView):
    content_negotiation_class = _FirstRendererNegotiation

    @extend_schema(
        operation_id="audit_events_export",
        summary="The audit trail as CSV (clinic admins; the export is itself audited)",
        parameters=FILTER_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR), **REFUSED},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        user = signed_in_user(request)
        audit_trail_check_access(user=user)
        filters = _filters_from(request)
        events = audit_event_list_for_user(user=user, filters=filters)
        return audit_events_csv_export(actor=user, filters=filters, events=events)
