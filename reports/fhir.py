"""A progress report as a FHIR R4 Bundle: DiagnosticReport, Observations, DocumentReference.

Built from the report's verified input snapshot, so the export shows exactly what the PDF shows.
Codes (CLINICAL.md): LOINC 44249-1 PHQ-9 panel (with the total as its member), 44261-6 PHQ-9
total, 70274-6 GAD-7 total; the document is a LOINC 11506-3 progress note. Instruments without a
LOINC code here (QIDS-SR16, MADRS) carry a text-only code. Resources reference each other by
``urn:uuid:`` full URLs built from public ids, so the "collection" bundle is self-contained.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from portal.clinical.scoring import INSTRUMENTS
from reports.content import band_label
from reports.models import OUTCOME_INSTRUMENTS, ProgressReport
from reports.selectors import report_file

LOINC: Final = "http://loinc.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PROGRESS_NOTE: Final = {"system": LOINC, "code": "11506-3", "display": "Progress note"}
PHQ9_PANEL: Final = {
    "system": LOINC,
    "code": "44249-1",
    "display": "PHQ-9 quick depression assessment panel [Reported.PHQ]",
}
TOTAL_CODES: Final[dict[str, dict[str, str]]] = {
    "phq9": {
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    },
    "gad7": {
        "system": LOINC,
        "code": "70274-6",
        "display": "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    },
}


def _urn(public_id: uuid.UUID | str) -> str:
    return f"urn:uuid:{public_id}"


def _instant(value: datetime | str) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.localtime(moment).isoformat()


def _total_code(instrument: str) -> dict[str, Any]:
    name = INSTRUMENTS[instrument].name
    coding = TOTAL_CODES.get(instrument)
    code: dict[str, Any] = {"text": f"{name} total score"}
    if coding is not None:
        code["coding"] = [coding]
    return code


def _observations(
    snapshot: Mapping[str, Any], patient_url: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """(entries, result references): a total Observation per scored assessment, and for the
    PHQ-9 a panel Observation whose member is the total."""
    entries: list[dict[str, Any]] = []
    results: list[str] = []
    survey = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}]
    for item in snapshot["assessments"]:
        if item["instrument"] not in OUTCOME_INSTRUMENTS:
            continue
        total_url = _urn(item["id"])
        total: dict[str, Any] = {
            "resourceType": "Observation",
            "id": item["id"],
            "status": "final",
            "category": survey,
            "code": _total_code(item["instrument"]),
            "subject": {"reference": patient_url},
            "effectiveDateTime": _instant(item["taken_at"]),
            "valueInteger": item["total"],
            "interpretation": [{"text": band_label(item["band"])}],
        }
        entries.append({"fullUrl": total_url, "resource": total})
        results.append(total_url)
        if item["instrument"] == "phq9":
            panel_id = str(uuid.uuid5(uuid.UUID(item["id"]), "phq9-panel"))
            panel = {
                "resourceType": "Observation",
                "id": panel_id,
                "status": "final",
                "category": survey,
                "code": {"coding": [PHQ9_PANEL], "text": "PHQ-9"},
                "subject": {"reference": patient_url},
                "effectiveDateTime": _instant(item["taken_at"]),
                "hasMember": [{"reference": total_url}],
            }
            entries.append({"fullUrl": _urn(panel_id), "resource": panel})
            results.append(_urn(panel_id))
    return entries, results


def report_fhir_bundle(report: ProgressReport, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle as JSON-ready data. ``report`` comes from ``report_detail_for_user`` (which
    audited the read) and ``snapshot`` is its verified input snapshot."""
    referral = report.referral
    patient_id = referral.patient.public_id
    patient_url = _urn(patient_id)
    report_url = _urn(report.public_id)
    document_id = uuid.uuid5(report.public_id, "pdf")
    signed = report.is_signed
    status = "final" if signed else "preliminary"
    reference = snapshot["report"]["reference"]

    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient_id),
        "name": [{"text": snapshot["patient"]["display_name"]}],
    }
    if snapshot["patient"]["birth_year"]:
        patient["birthDate"] = str(snapshot["patient"]["birth_year"])

    observation_entries, results = _observations(snapshot, patient_url)
    moments = [item["taken_at"] for item in snapshot["assessments"]] + [
        item["started_at"] for item in snapshot["infusions"]
    ]
    period: dict[str, str] = {"end": _instant(snapshot["data_as_of"])}
    if moments:
        period["start"] = _instant(min(moments, key=datetime.fromisoformat))
    issued = report.signed_at if signed else report.generated_at
    diagnostic: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(report.public_id),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": report_url}],
        "status": status,
        "code": {
            "coding": [PROGRESS_NOTE],
            "text": f"Ketamine treatment progress report ({report.kind})",
        },
        "subject": {"reference": patient_url},
        "effectivePeriod": period,
        "performer": [{"display": snapshot["clinic"]["name"]}],
        "result": [{"reference": url} for url in results],
    }
    if issued is not None:
        diagnostic["issued"] = _instant(issued)
    if signed and report.signed_by is not None:
        diagnostic["resultsInterpreter"] = [
            {"display": report.signed_by.full_name or report.signed_by.email}
        ]
        diagnostic["conclusion"] = report.interpretation

    entries: list[dict[str, Any]] = [
        {"fullUrl": report_url, "resource": diagnostic},
        *observation_entries,
    ]
    found = report_file(report)
    if found is not None:
        pdf_url = settings.SITE_URL.rstrip("/") + reverse(
            "report-pdf", kwargs={"report_id": report.public_id}
        )
        document: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "id": str(document_id),
            "status": "current",
            "docStatus": status,
            "type": {"coding": [PROGRESS_NOTE]},
            "subject": {"reference": patient_url},
            "author": [{"display": snapshot["clinic"]["name"]}],
            "description": f"Progress report {reference}, version {report.version}",
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "url": pdf_url,
                        "size": found.size,
                        "title": f"progress-report-{reference}.pdf",
                    }
                }
            ],
            "context": {"related": [{"reference": report_url}]},
        }
        if issued is not None:
            document["date"] = _instant(issued)
        if signed and report.signed_by is not None:
            document["authenticator"] = {
                "display": report.signed_by.full_name or report.signed_by.email
            }
        entries.append({"fullUrl": _urn(document_id), "resource": document})
    entries.append({"fullUrl": patient_url, "resource": patient})
    return {
        "resourceType": "Bundle",
        "id": str(report.public_id),
        "type": "collection",
        "timestamp": _instant(timezone.now()),
        "entry": entries,
    }
