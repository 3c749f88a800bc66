"""audit_record and audit_phi_read: what they store, and that their failure fails the caller."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from portal.accounts.models import Organization, User
from portal.audit.context import audit_scope
from portal.audit.models import AuditEvent
from portal.audit.services import InvalidAuditEvent, audit_phi_read, audit_record
from tests.factories import OrganizationFactory, UserFactory
from tests.portal.audit.helpers import ON_POSTGRESQL

pytestmark = pytest.mark.django_db


def test_audit_record_stores_actor_action_object_and_request_context() -> None:
    actor = UserFactory.create(email="coordinator@clinic.example")
    referral_id = uuid.uuid4()

    with audit_scope(request_id="req-12345678", ip="203.0.113.9"):
        event = audit_record(
            actor=actor,
            action="referral.accepted",
            object_type="referral",
            object_id=referral_id,
            details={"from_status": "in_review", "urgent": False, "attempt": 2, "note": None},
        )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == actor
    assert stored.actor_label == "coordinator@clinic.example"
    assert stored.action == "referral.accepted"
    assert stored.object_type == "referral"
    assert stored.object_id == str(referral_id)
    assert stored.outcome == "allowed"
    assert stored.request_id == "req-12345678"
    assert stored.ip == "203.0.113.9"
    assert stored.details == {
        "from_status": "in_review",
        "urgent": False,
        "attempt": 2,
        "note": None,
    }
    assert stored.occurred_at.tzinfo is not None


def test_without_a_request_the_actor_is_the_system_and_there_is_no_request_context() -> None:
    event = audit_record(
        actor=None, action="report.generated", object_type="report", object_id=None
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.actor_label, stored.request_id, stored.ip) == (
        None,
        "system",
        "",
        None,
    )
    assert stored.object_id == ""


def test_an_anonymous_request_is_labelled_anonymous() -> None:
    with audit_scope(request_id="req-anon-0001", ip="198.51.100.7"):
        event = audit_record(
            actor=None,
            action="auth.login_failed",
            object_type="",
            object_id=None,
            outcome="denied",
        )

    assert (event.actor_label, event.outcome) == ("anonymous", "denied")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"action": "Referral Accepted"}, "not a dotted lower-case name"),
        ({"action": "referral"}, "not a dotted lower-case name"),
        ({"object_type": "Referral"}, "not a lower-case name"),
        ({"object_id": "x" * 65}, "longer than 64"),
        ({"outcome": "maybe"}, "is not 'allowed' or 'denied'"),
        ({"details": {"Patient Name": "x"}}, "not a short lower-case name"),
        ({"details": {"weight": 81.5}}, "must be a string, integer or boolean"),
        ({"details": {"items": ["a"]}}, "must be a string, integer or boolean"),
        ({"details": {"note": "x" * 201}}, "longer than 200"),
        ({"details": {f"key{index}": index for index in range(17)}}, "at most 16 keys"),
    ],
)
def test_events_the_trail_cannot_hold_are_refused(arguments: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "actor": None,
        "action": "referral.updated",
        "object_type": "referral",
        "object_id": "r-1",
    } | arguments

    with pytest.raises(InvalidAuditEvent, match=message):
        audit_record(**values)

    assert AuditEvent.objects.count() == 0


def _organization_create(*, actor: User, name: str, details: dict[str, Any]) -> Organization:
    """A service in the house style: the change and its audit event in one transaction."""
    with transaction.atomic():
        organization = Organization.objects.create(name=name, kind="practice")
        audit_record(
            actor=actor,
            action="organization.created",
            object_type="organization",
            object_id=organization.public_id,
            details=details,
        )
        return organization


def test_when_the_audit_insert_fails_the_change_fails_with_it() -> None:
    actor = UserFactory.create()

    with (
        mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("audit unavailable")),
        pytest.raises(DatabaseError, match="audit unavailable"),
    ):
        _organization_create(actor=actor, name="Never Created", details={})

    assert not Organization.objects.filter(name="Never Created").exists()
    assert AuditEvent.objects.count() == 0


def test_an_invalid_audit_event_fails_the_change_too() -> None:
    actor = UserFactory.create()

    with pytest.raises(InvalidAuditEvent):
        _organization_create(actor=actor, name="Never Created", details={"dose": 0.5})

    assert not Organization.objects.filter(name="Never Created").exists()


def test_the_change_and_its_event_commit_together() -> None:
    actor = UserFactory.create()

    organization = _organization_create(actor=actor, name="Created", details={"kind": "practice"})

    event = AuditEvent.objects.get()
    assert (event.action, event.object_id) == ("organization.created", str(organization.public_id))


class _DetailApi(APIView):
    """A detail read in the house style: audit the PHI read, then return the data."""

    permission_classes = [IsAuthenticated]  # the users here have no MFA; not what is tested

    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.UUIDField(source="public_id")
        name = serializers.CharField()

    def get(self, request: Request, public_id: uuid.UUID) -> Response:
        organization = Organization.objects.get(public_id=public_id)
        assert isinstance(request.user, User)
        audit_phi_read(
            actor=request.user, object_type="organization", object_id=organization.public_id
        )
        return Response(self.OutputSerializer(organization).data)


def _get_detail(user: User, organization: Organization) -> Response:
    request = APIRequestFactory().get("/detail/")
    force_authenticate(request, user=user)
    response: Response = _DetailApi.as_view()(request, public_id=organization.public_id)
    return response


def test_a_phi_read_is_audited_before_the_data_is_returned() -> None:
    user = UserFactory.create()
    organization = OrganizationFactory.create(name="Canary Practice")

    response = _get_detail(user, organization)

    assert response.data == {"id": str(organization.public_id), "name": "Canary Practice"}
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.object_type, event.object_id) == (
        user,
        "organization.read",
        "organization",
        str(organization.public_id),
    )


def test_when_the_phi_read_cannot_be_audited_no_data_is_returned() -> None:
    user = UserFactory.create()
    organization = OrganizationFactory.create(name="Canary Practice")
    returned: list[Response] = []

    with (
        mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("audit unavailable")),
        pytest.raises(DatabaseError, match="audit unavailable"),
    ):
        returned.append(_get_detail(user, organization))

    assert returned == []
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("synchronous", [False, True])
def test_a_phi_read_outside_a_transaction_is_committed_with_every_field(
    settings: Any, synchronous: bool
) -> None:
    """On PostgreSQL the read event's own commit skips the WAL flush wait unless configured;
    either way the stored row is the same, and nothing leaks into the session."""
    settings.AUDIT_PHI_READ_SYNCHRONOUS_COMMIT = synchronous
    actor = UserFactory.create(email="clinician@clinic.example")
    patient = uuid.uuid4()

    with (
        audit_scope(request_id="req-read-000001", ip="2001:db8::7"),
        CaptureQueriesContext(connection) as queries,
    ):
        event = audit_phi_read(
            actor=actor, object_type="patient", object_id=patient, details={"referral": "r-1"}
        )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert event.sequence == stored.sequence
    assert (
        stored.actor,
        stored.actor_label,
        stored.action,
        stored.object_type,
        stored.object_id,
        stored.outcome,
        stored.request_id,
        stored.ip,
        stored.details,
        stored.occurred_at,
    ) == (
        actor,
        "clinician@clinic.example",
        "patient.read",
        "patient",
        str(patient),
        "allowed",
        "req-read-000001",
        "2001:db8::7",
        {"referral": "r-1"},
        event.occurred_at,
    )
    skipped_flush = ON_POSTGRESQL and not synchronous
    assert [("synchronous_commit" in query["sql"]) for query in queries] == [skipped_flush]
    if ON_POSTGRESQL:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)


@pytest.mark.django_db
def test_a_phi_read_inside_a_transaction_simply_joins_it() -> None:
    actor = UserFactory.create()

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        audit_phi_read(actor=actor, object_type="patient", object_id="p-1")

    assert not any("synchronous_commit" in query["sql"] for query in queries)
    assert AuditEvent.objects.get().action == "patient.read"
