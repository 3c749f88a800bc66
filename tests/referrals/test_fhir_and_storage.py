"""The FHIR R4 view (validated with fhir.resources' R4B models) and PHI at rest."""

from __future__ import annotations

import uuid

from django.db import connection
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from portal.audit.models import AuditEvent
from referrals import services
from referrals.models import Referral
from tests.personas import Cast
from tests.referrals.factories import (
    CANARY_FAMILY_NAME,
    CANARY_GIVEN_NAME,
    PatientFactory,
    referral_in_state,
)
from tests.referrals.helpers import api_client


def test_the_fhir_view_is_a_valid_r4_bundle(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_review", urgent=True)

    response = api_client(cast, "coordinator").get(f"/api/v1/referrals/{referral.public_id}/fhir/")

    assert response.status_code == 200
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "collection"
    entries = bundle.entry or []
    assert [entry.resource.get_resource_type() for entry in entries if entry.resource] == [
        "ServiceRequest",
        "Task",
        "Patient",
    ]
    request_entry, task_entry, patient_entry = entries
    request, task, patient = request_entry.resource, task_entry.resource, patient_entry.resource
    assert isinstance(request, ServiceRequest)
    assert isinstance(task, Task)
    assert isinstance(patient, Patient)
    assert (request.status, request.intent, request.priority) == ("active", "order", "urgent")
    assert request.subject is not None
    assert request.subject.reference == patient_entry.fullUrl
    coding = (request.reasonCode or [])[0].coding or []
    assert (coding[0].system, coding[0].code) == ("http://hl7.org/fhir/sid/icd-10-cm", "F33.2")
    assert request.requester is not None
    assert request.requester.identifier is not None
    assert request.requester.identifier.value == "1234567893"
    assert (task.status, task.intent) == ("received", "order")
    assert task.focus is not None
    assert task.focus.reference == request_entry.fullUrl
    assert task.for_fhir is not None
    assert task.for_fhir.reference == patient_entry.fullUrl
    names = patient.name or []
    assert (names[0].family, names[0].given) == ("Example", ["Dana"])
    assert (patient.gender, str(patient.birthDate)) == ("female", "1984-05-17")
    assert (request.identifier or [])[0].value == f"urn:referral-number:{referral.number}"
    assert (
        AuditEvent.objects.filter(
            action="referral.read",
            object_id=str(referral.public_id),
            actor=cast.user("coordinator"),
        ).count()
        == 1
    )

    again = api_client(cast, "coordinator").get(f"/api/v1/referrals/{referral.public_id}/fhir/")
    assert again.json()["entry"][1]["fullUrl"] == task_entry.fullUrl  # a stable Task id


def test_every_state_gives_a_valid_bundle(cast: Cast) -> None:
    expected_task = {
        "submitted": "requested", "declined": "rejected", "scheduled": "in-progress",
        "completed": "completed", "cancelled": "cancelled",
    }  # fmt: skip
    for state, task_status in expected_task.items():
        referral = referral_in_state(cast, state)
        response = api_client(cast, "provider").get(f"/api/v1/referrals/{referral.public_id}/fhir/")
        bundle = Bundle.model_validate(response.json())
        task = (bundle.entry or [])[1].resource
        assert isinstance(task, Task)
        assert task.status == task_status


def test_a_draft_bundle_with_almost_nothing_is_still_valid(cast: Cast) -> None:
    referral = services.referral_create(actor=cast.user("provider"), data={})

    response = api_client(cast, "provider").get(f"/api/v1/referrals/{referral.public_id}/fhir/")

    bundle = Bundle.model_validate(response.json())
    assert [
        entry.resource.get_resource_type() for entry in bundle.entry or [] if entry.resource
    ] == [
        "ServiceRequest",
        "Task",
        "Patient",
    ]


def _raw_rows() -> str:
    """Every column of every referral table, as stored."""
    dump: list[str] = []
    with connection.cursor() as cursor:
        for model in ("patient", "referral", "priortrial", "referralevent", "attachment"):
            cursor.execute(f"SELECT * FROM referrals_{model}")  # noqa: S608 - fixed table names
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def test_a_canary_patient_never_appears_in_raw_database_rows(cast: Cast) -> None:
    patient = PatientFactory.create(
        practice=cast.practice,
        given_name=CANARY_GIVEN_NAME,
        family_name=CANARY_FAMILY_NAME,
        email="zebulonia@canary.example",
        created_by=cast.user("provider"),
    )
    referral = referral_in_state(
        cast,
        "in_review",
        patient=patient,
        reason=f"Referral for {CANARY_GIVEN_NAME}",
        current_medications=f"{CANARY_FAMILY_NAME}-mycin",
    )
    services.referral_request_info(
        actor=cast.user("coordinator"),
        referral=referral,
        question=f"Is {CANARY_GIVEN_NAME} pregnant?",
    )

    raw = _raw_rows()

    assert (
        str(referral.public_id).replace("-", "") in raw.replace("-", "")
        or str(uuid.UUID(str(referral.public_id))) in raw
    )
    for canary in (CANARY_GIVEN_NAME, CANARY_FAMILY_NAME, "zebulonia@canary", "sertraline"):
        assert canary not in raw
    # And the application still reads it all back.
    fresh = Referral.objects.get(pk=referral.pk)
    assert fresh.patient.given_name == CANARY_GIVEN_NAME
    assert fresh.events.get(kind="info_requested").note == f"Is {CANARY_GIVEN_NAME} pregnant?"
