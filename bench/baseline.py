"""Bare endpoints for the load benchmark's baselines, measured in the same run as the portal's.

Mounted under ``/bench-baseline/`` by ``bench.urls`` only when ``BENCH_BASELINE_URLS=1`` (the
benchmark's gunicorn, ``bench.wsgi``); the production image does not even contain ``bench/``.

Each one returns the same rows as its portal counterpart, through the same middleware stack and
the same authentication (the ``X-Session-Token`` of a signed-in user, DRF's ``IsAuthenticated``),
but with no permission, MFA or scoping query, no audit event and no decryption (the encrypted
columns are returned as the stored tokens):

* list: a cursor page of 25 of an organisation's referrals, newest first, the same joins and the
  same fields as the portal's list rows (which carry no PHI);
* detail: one referral with its patient and prior trials, every column as stored;
* thread page: the first 50 messages of a thread, oldest first (the portal's default page);
* message save: the minimum a message row needs, in one transaction: the thread's next sequence
  (``UPDATE ... RETURNING``; ``(thread, sequence)`` is unique) and a plain ``INSERT`` of the
  message with its body as plaintext. It writes into a thread of its own per virtual user that
  nothing else reads: its rows are not valid tokens and would fail to decrypt (fail closed).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection, transaction
from django.http import Http404
from django.urls import path
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.models import Message, Thread
from portal.accounts.authentication import SessionTokenAuthentication
from referrals.models import PriorTrial, Referral

PAGE_SIZE = 50


class _BareApi(APIView):
    # Who is calling, as every API request: the session token. Nothing about what they may see.
    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [IsAuthenticated]


class _Ref(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()


class _UserRef(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="public_id")
    full_name = serializers.CharField()


class _ListItem(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="public_id")
    number = serializers.CharField()
    status = serializers.CharField()
    urgent = serializers.BooleanField()
    practice = _Ref()
    clinic = _Ref()
    provider = _UserRef()
    created_by = _UserRef()
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    triage_due_at = serializers.DateTimeField(allow_null=True)
    consult_at = serializers.DateTimeField(allow_null=True)


class _NewestFirst(CursorPagination):
    ordering = "-created_at"
    page_size = 25


class BareReferralListApi(_BareApi):
    def get(self, request: Request, organization_id: uuid.UUID) -> Response:
        referrals = (
            Referral.objects.filter(practice__public_id=organization_id)
            if request.query_params.get("side") != "clinic"
            else Referral.objects.filter(clinic__public_id=organization_id)
        )
        referrals = referrals.select_related("practice", "clinic", "provider", "created_by")
        paginator = _NewestFirst()
        page = paginator.paginate_queryset(referrals, request, view=self) or []
        return paginator.get_paginated_response(_ListItem(page, many=True).data)


# The stored columns; encrypted ones come back as their tokens (values() never decrypts).
REFERRAL_COLUMNS = (
    "public_id",
    "number",
    "status",
    "urgent",
    "practice__public_id",
    "practice__name",
    "clinic__public_id",
    "clinic__name",
    "provider__public_id",
    "provider__full_name",
    "created_by__public_id",
    "created_by__full_name",
    "patient__public_id",
    "patient__given_name",
    "patient__family_name",
    "patient__birth_date",
    "patient__sex",
    "patient__phone",
    "patient__email",
    "reason",
    "diagnosis_codes",
    "episode_months",
    "current_medications",
    "allergies",
    "office_bp_systolic",
    "office_bp_diastolic",
    "office_heart_rate",
    "phq9_answers",
    "contraindications",
    "suicidal_intent",
    "insurance",
    "consent_attested",
    "provider_signed_off_at",
    "submitted_at",
    "triage_due_at",
    "consult_at",
    "decline_reason",
    "decline_advice",
    "cancel_reason",
    "created_at",
    "updated_at",
)
TRIAL_COLUMNS = ("drug", "max_daily_dose_mg", "weeks_at_dose", "adherence", "outcome")


class BareReferralDetailApi(_BareApi):
    def get(self, request: Request, referral_id: uuid.UUID) -> Response:
        row = Referral.objects.filter(public_id=referral_id).values("pk", *REFERRAL_COLUMNS).first()
        if row is None:
            raise Http404
        trials = list(
            PriorTrial.objects.filter(referral_id=row.pop("pk"))
            .order_by("position", "id")
            .values(*TRIAL_COLUMNS)
        )
        return Response({**row, "prior_trials": trials})


MESSAGE_COLUMNS = (
    "public_id",
    "author__public_id",
    "author__full_name",
    "author_side",
    "body",
    "kind",
    "created_at",
    "retracted_at",
)


class BareThreadMessagesApi(_BareApi):
    def get(self, request: Request, thread_id: uuid.UUID) -> Response:
        rows = list(
            Message.objects.filter(thread__public_id=thread_id)
            .order_by("sequence")
            .values("sequence", *MESSAGE_COLUMNS)[: PAGE_SIZE + 1]
        )
        page = rows[:PAGE_SIZE]
        last = page[-1].pop("sequence") if page else None
        for message in page:
            message.pop("sequence", None)
        return Response(
            {"results": page, "next": f"after:{last}" if len(rows) > PAGE_SIZE else None}
        )

    class InputSerializer(serializers.Serializer[Any]):
        body = serializers.CharField(max_length=20_000)

    def post(self, request: Request, thread_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        message_id = uuid.uuid4()
        thread_table = Thread._meta.db_table
        message_table = Message._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {thread_table} SET last_sequence = last_sequence + 1, "  # noqa: S608 - table names from the models
                "last_message_at = now(), updated_at = now() "
                "WHERE public_id = %s RETURNING id, last_sequence",
                [thread_id],
            )
            found = cursor.fetchone()
            if found is None:
                raise Http404
            cursor.execute(
                f"INSERT INTO {message_table} (public_id, created_at, updated_at, thread_id, "  # noqa: S608
                "sequence, kind, author_id, author_side, body) "
                "VALUES (%s, now(), now(), %s, %s, 'user', %s, 'practice', %s)",
                [message_id, found[0], found[1], request.user.pk, data["body"]],
            )
        return Response({"id": str(message_id), "sequence": found[1]}, status=201)

    parser_classes = [JSONParser]


urlpatterns = [
    path(
        "organizations/<uuid:organization_id>/referrals/",
        BareReferralListApi.as_view(),
        name="bench-bare-referral-list",
    ),
    path(
        "referrals/<uuid:referral_id>/",
        BareReferralDetailApi.as_view(),
        name="bench-bare-referral-detail",
    ),
    path(
        "threads/<uuid:thread_id>/messages/",
        BareThreadMessagesApi.as_view(),
        name="bench-bare-thread-messages",
    ),
]
