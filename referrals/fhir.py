"""A referral as a FHIR R4 Bundle: ServiceRequest (the referral), Task (its workflow state, with
the 360X step) and Patient.

The resources reference each other by ``urn:uuid:`` full URLs built from public ids, so the bundle
is self-contained ("collection"). Codes: ICD-10-CM for the diagnoses, US NPI for the provider,
HL7 v3 ActPriority semantics through ServiceRequest.priority (routine | urgent).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from django.utils import timezone

from portal.accounts.models import Membership, Role
from referrals.models import Referral, ReferralStatus
from referrals.selectors import ReferralDetail

ICD10_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"
NUMBER_SYSTEM: Final = "urn:ietf:rfc:3986"
KETAMINE_CONSULT_TEXT: Final = (
    "Consultation for ketamine treatment of treatment-resistant depression"
)

S = ReferralStatus

# ServiceRequest.status is the requester's view of the order.
_SERVICE_REQUEST_STATUS: Final[dict[str, str]] = {
    S.DRAFT: "draft",
    S.SUBMITTED: "active",
    S.IN_REVIEW: "active",
    S.INFO_REQUESTED: "active",
    S.ACCEPTED: "active",
    S.SCHEDULED: "active",
    S.IN_TREATMENT: "active",
    S.COMPLETED: "completed",
    S.CLOSED: "completed",
    S.DECLINED: "revoked",
    S.CANCELLED: "revoked",
}


def _instant(value: Any) -> str | None:
    return None if value is None else timezone.localtime(value).isoformat()


def _provider_npi(referral: Referral) -> str:
    membership = Membership.objects.filter(
        user_id=referral.provider_id,
        organization_id=referral.practice_id,
        role=Role.PROVIDER,
    ).first()
    return membership.npi if membership is not None else ""


def _urn(public_id: Any) -> str:
    return f"urn:uuid:{public_id}"


def referral_fhir_bundle(detail: ReferralDetail) -> dict[str, Any]:
    """The bundle as JSON-ready data (``detail`` from ``referral_detail_for_user``, which has
    audited the PHI read)."""
    referral = detail.referral
    patient = referral.patient
    patient_url = _urn(patient.public_id)
    request_url = _urn(referral.public_id)
    # The Task has no row of its own: a name-based UUID keeps its id stable across reads.
    task_id = uuid.uuid5(referral.public_id, "fhir-task")
    task_url = _urn(task_id)

    requester: dict[str, Any] = {"display": referral.provider.full_name or "Referring provider"}
    npi = _provider_npi(referral)
    if npi:
        requester["identifier"] = {"system": NPI_SYSTEM, "value": npi}

    patient_resource: dict[str, Any] = {"resourceType": "Patient", "id": str(patient.public_id)}
    name: dict[str, Any] = {}
    if patient.family_name:
        name["family"] = patient.family_name
    if patient.given_name:
        name["given"] = [patient.given_name]
    if name:
        patient_resource["name"] = [name]
    if patient.sex:
        patient_resource["gender"] = patient.sex
    if patient.birth_date:
        patient_resource["birthDate"] = patient.birth_date
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        patient_resource["telecom"] = telecom

    identifier = [{"system": NUMBER_SYSTEM, "value": f"urn:referral-number:{referral.number}"}]
    service_request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(referral.public_id),
        "identifier": identifier,
        "status": _SERVICE_REQUEST_STATUS[referral.status],
        "intent": "order",
        "priority": "urgent" if referral.urgent else "routine",
        "code": {"text": KETAMINE_CONSULT_TEXT},
        "subject": {"reference": patient_url},
        "requester": requester,
        "performer": [{"display": referral.clinic.name}],
    }
    if referral.submitted_at is not None:
        service_request["authoredOn"] = _instant(referral.submitted_at)
    if referral.diagnosis_codes:
        service_request["reasonCode"] = [
            {"coding": [{"system": ICD10_SYSTEM, "code": code}]}
            for code in referral.diagnosis_codes
        ]
    if referral.reason:
        service_request["note"] = [{"text": referral.reason}]

    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(task_id),
        "identifier": identifier,
        "status": detail.fhir_task_status,
        "intent": "order",
        "priority": "urgent" if referral.urgent else "routine",
        "focus": {"reference": request_url},
        "for": {"reference": patient_url},
        "authoredOn": _instant(referral.created_at),
        "lastModified": _instant(referral.updated_at),
        "requester": {"display": referral.practice.name},
        "owner": {"display": referral.clinic.name},
        "businessStatus": {"text": referral.get_status_display()},
    }
    if detail.x360_transaction is not None:
        task["input"] = [
            {
                "type": {"text": "360X transaction"},
                "valueString": detail.x360_transaction,
            }
        ]
    if referral.status == S.DECLINED and referral.decline_reason:
        task["statusReason"] = {"text": referral.decline_reason}
    elif referral.status == S.CANCELLED and referral.cancel_reason:
        task["statusReason"] = {"text": referral.cancel_reason}
    if referral.consult_at is not None:
        task["restriction"] = {"period": {"start": _instant(referral.consult_at)}}

    return {
        "resourceType": "Bundle",
        "id": str(referral.public_id),
        "type": "collection",
        "timestamp": _instant(timezone.now()),
        "entry": [
            {"fullUrl": request_url, "resource": service_request},
            {"fullUrl": task_url, "resource": task},
            {"fullUrl": patient_url, "resource": patient_resource},
        ],
    }
