"""``/api/v1/notifications/``: the caller's own notifications and e-mail preference."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import User
from portal.notifications.content import event_title
from portal.notifications.models import EmailMode, Notification
from portal.notifications.selectors import (
    notification_get_for_user,
    notification_list_for_user,
    notification_preference_for_user,
)
from portal.notifications.services import (
    notification_mark_all_read,
    notification_mark_read,
    notification_preference_update,
)


def signed_in_user(request: Request) -> User:
    """The caller as a portal user (the default permission already let only those through)."""
    if not isinstance(request.user, User):
        raise exceptions.NotAuthenticated()
    return request.user


class NotificationCursorPagination(CursorPagination):
    """Newest first, by cursor: no COUNT over a user's whole history."""

    ordering = ("-created_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


@extend_schema_serializer(component_name="Notification")
class NotificationOutputSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="public_id")
    event = serializers.CharField()
    title = serializers.SerializerMethodField()
    reference = serializers.CharField()
    link = serializers.CharField()
    urgent = serializers.BooleanField()
    read_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_title(self, notification: Notification) -> str:
        return event_title(notification.event)


@extend_schema_serializer(component_name="NotificationPage")
class NotificationPageSerializer(serializers.Serializer[Any]):
    """The cursor-paginated list: no total count, by design."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = NotificationOutputSerializer(many=True)


@extend_schema_serializer(component_name="NotificationError")
class ErrorOutputSerializer(serializers.Serializer[Any]):
    detail = serializers.JSONField(help_text="A message, or messages per field.")
    code = serializers.CharField()


NOT_FOUND = OpenApiResponse(
    ErrorOutputSerializer, description="No such notification, or not yours (the same answer)."
)
INVALID = OpenApiResponse(ErrorOutputSerializer, description="The input was refused.")
SIGNED_OUT = OpenApiResponse(
    ErrorOutputSerializer, description="Not signed in (401) or no MFA yet (403, mfa_required)."
)


NOTIFICATION_EXAMPLE = OpenApiExample(
    "A referral was accepted",
    value={
        "id": "5b0e1f5e-3c57-4d5b-9b8f-0a4b7f0c2d11",
        "event": "referral.accepted",
        "title": "Referral accepted",
        "reference": "R-2026-00042",
        "link": "/referrals/0e6f1c52-8a7b-4a55-a0a4-1d3c2b6e9f10/",
        "urgent": False,
        "read_at": None,
        "created_at": "2026-03-02T14:05:00Z",
    },
    response_only=True,
)


class NotificationListApi(APIView):
    pagination_class = NotificationCursorPagination

    @extend_schema(
        operation_id="notifications_list",
        summary="Your notifications, newest first",
        description=(
            "Only the caller's own notifications, cursor-paginated (`cursor`, `page_size` up to "
            "100). Notifications carry a reference number and a portal link, never PHI."
        ),
        parameters=[
            OpenApiParameter("cursor", str, description="The `next` or `previous` cursor."),
            OpenApiParameter(
                "page_size", int, description="Rows per page, 25 by default, 100 at most."
            ),
        ],
        responses={
            200: NotificationPageSerializer,
            401: SIGNED_OUT,
            403: SIGNED_OUT,
            404: OpenApiResponse(ErrorOutputSerializer, description="The cursor is not valid."),
        },
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            notification_list_for_user(user=request.user), request, view=self
        )
        data = NotificationOutputSerializer(page or [], many=True).data
        return paginator.get_paginated_response(data)


class NotificationReadApi(APIView):
    @extend_schema(
        operation_id="notifications_read",
        summary="Mark one of your notifications read",
        description="Idempotent: the first read time is kept. Another user's id answers 404.",
        request=None,
        responses={
            200: NotificationOutputSerializer,
            401: SIGNED_OUT,
            403: SIGNED_OUT,
            404: NOT_FOUND,
        },
        examples=[NOTIFICATION_EXAMPLE],
    )
    def post(self, request: Request, notification_id: uuid.UUID) -> Response:
        user = signed_in_user(request)
        notification = notification_get_for_user(user=user, public_id=notification_id)
        notification = notification_mark_read(actor=user, notification=notification)
        return Response(NotificationOutputSerializer(notification).data)


class NotificationReadAllApi(APIView):
    @extend_schema_serializer(component_name="NotificationReadAll")
    class OutputSerializer(serializers.Serializer[Any]):
        marked = serializers.IntegerField(help_text="How many notifications were unread.")

    @extend_schema(
        operation_id="notifications_read_all",
        summary="Mark all your notifications read",
        request=None,
        responses={200: OutputSerializer, 401: SIGNED_OUT, 403: SIGNED_OUT},
    )
    def post(self, request: Request) -> Response:
        marked = notification_mark_all_read(actor=signed_in_user(request))
        return Response(self.OutputSerializer({"marked": marked}).data)


class NotificationPreferenceApi(APIView):
    @extend_schema_serializer(component_name="NotificationPreferenceInput")
    class InputSerializer(serializers.Serializer[Any]):
        email_mode = serializers.ChoiceField(choices=EmailMode.choices)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({field: ["Unknown field."] for field in unknown})
            return attrs

    @extend_schema_serializer(component_name="NotificationPreference")
    class OutputSerializer(serializers.Serializer[Any]):
        email_mode = serializers.ChoiceField(choices=EmailMode.choices)

    @extend_schema(
        operation_id="notifications_preferences_retrieve",
        summary="Your e-mail preference",
        responses={200: OutputSerializer, 401: SIGNED_OUT, 403: SIGNED_OUT},
        examples=[OpenApiExample("Default", value={"email_mode": "immediate"})],
    )
    def get(self, request: Request) -> Response:
        preference = notification_preference_for_user(user=request.user)
        return Response(self.OutputSerializer(preference).data)

    @extend_schema(
        operation_id="notifications_preferences_update",
        summary="Choose immediate e-mails or a daily digest",
        description=(
            "`immediate`: one e-mail per update. `daily_digest`: one summary e-mail a day. "
            "Urgent updates are always e-mailed at once."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: INVALID, 401: SIGNED_OUT, 403: SIGNED_OUT},
        examples=[OpenApiExample("Daily digest", value={"email_mode": "daily_digest"})],
    )
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preference = notification_preference_update(
            actor=signed_in_user(request), email_mode=serializer.validated_data["email_mode"]
        )
        return Response(self.OutputSerializer(preference).data, status=status.HTTP_200_OK)
