"""``/api/v1/audit-events/`` and its CSV export: clinic admins only, filters, pages, audited."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portal.audit.context import audit_scope
from portal.audit.models import AuditEvent
from portal.audit.services import audit_denied, audit_phi_read, audit_record
from tests.personas import ALL_PERSONAS, Cast

pytestmark = pytest.mark.django_db

LIST = "/api/v1/audit-events/"
EXPORT = "/api/v1/audit-events/export.csv"
NOT_ADMINS = [name for name in ALL_PERSONAS if name not in {"admin", "anonymous"}]
CSV_HEADER = [
    "sequence",
    "occurred_at",
    "actor",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "request_id",
    "ip",
    "details",
    "sealed",
]


def client_for(cast: Cast, persona: str) -> APIClient:
    client = APIClient()
    user = cast[persona].user
    if user is not None:
        client.force_authenticate(user)
    return client


def _csv(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def trail(cast: Cast) -> dict[str, Any]:
    """A small trail: a referral read by the provider, a patient read by the coordinator."""
    referral, patient, other_referral = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with audit_scope(request_id="req-fixture-01", ip="203.0.113.5"):
        created = audit_record(
            actor=cast.user("provider"),
            action="referral.created",
            object_type="referral",
            object_id=referral,
            details={"patient": str(patient)},
        )
        read = audit_phi_read(
            actor=cast.user("coordinator"),
            object_type="patient",
            object_id=patient,
            details={"referral": str(referral)},
        )
        message = audit_record(
            actor=cast.user("clinician"),
            action="message.sent",
            object_type="message",
            object_id=uuid.uuid4(),
            details={"referral": str(referral), "patient": str(patient)},
        )
        other = audit_record(
            actor=cast.user("outsider"),
            action="referral.created",
            object_type="referral",
            object_id=other_referral,
        )
    return {
        "referral": referral,
        "patient": patient,
        "events": [created, read, message, other],
    }


@pytest.mark.parametrize("persona", NOT_ADMINS)
@pytest.mark.parametrize("path", [LIST, EXPORT])
def test_only_clinic_admins_may_read_the_trail(
    cast: Cast, trail: dict[str, Any], persona: str, path: str
) -> None:
    before = set(AuditEvent.objects.values_list("sequence", flat=True))

    response = client_for(cast, persona).get(path, {"referral": str(trail["referral"])})

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only clinic admins can review the audit trail.",
        "code": "permission_denied",
    }
    # Nothing changed but the record of the refusal itself.
    new = AuditEvent.objects.exclude(sequence__in=before)
    assert list(new.values_list("actor", "action", "outcome", "object_type")) == [
        (cast.user(persona).pk, "audit.list", "denied", "audit_trail")
    ]


@pytest.mark.parametrize("path", [LIST, EXPORT])
def test_anonymous_callers_are_refused_and_leave_no_trace(
    cast: Cast, trail: dict[str, Any], path: str
) -> None:
    before = AuditEvent.objects.count()

    response = client_for(cast, "anonymous").get(path)

    assert response.status_code in {401, 403}
    assert response.json()["code"] == "not_authenticated"
    assert AuditEvent.objects.count() == before


def test_a_clinic_admin_lists_the_trail_newest_first(cast: Cast, trail: dict[str, Any]) -> None:
    response = client_for(cast, "admin").get(LIST)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [item["sequence"] for item in body["results"]] == [
        event.sequence for event in reversed(trail["events"])
    ]
    created = body["results"][-1]
    assert created == {
        "sequence": trail["events"][0].sequence,
        "occurred_at": created["occurred_at"],
        "actor": str(cast.user("provider").public_id),
        "actor_label": "provider@cast.example",
        "action": "referral.created",
        "object_type": "referral",
        "object_id": str(trail["referral"]),
        "outcome": "allowed",
        "request_id": "req-fixture-01",
        "ip": "203.0.113.5",
        "details": {"patient": str(trail["patient"])},
        "sealed": False,
    }


def test_who_touched_a_referral(cast: Cast, trail: dict[str, Any]) -> None:
    response = client_for(cast, "admin").get(LIST, {"referral": str(trail["referral"])})

    created, read, message, _other = trail["events"]
    assert [item["sequence"] for item in response.json()["results"]] == [
        message.sequence,
        read.sequence,
        created.sequence,
    ]


def test_who_accessed_a_patient(cast: Cast, trail: dict[str, Any]) -> None:
    response = client_for(cast, "admin").get(LIST, {"patient": str(trail["patient"])})

    created, read, message, _other = trail["events"]
    assert [(item["sequence"], item["action"]) for item in response.json()["results"]] == [
        (message.sequence, "message.sent"),
        (read.sequence, "patient.read"),
        (created.sequence, "referral.created"),
    ]


def test_what_one_user_did(cast: Cast, trail: dict[str, Any]) -> None:
    response = client_for(cast, "admin").get(
        LIST, {"actor": str(cast.user("coordinator").public_id)}
    )

    assert [item["action"] for item in response.json()["results"]] == ["patient.read"]


def test_by_object_type_and_id(cast: Cast, trail: dict[str, Any]) -> None:
    other = trail["events"][3]

    response = client_for(cast, "admin").get(
        LIST, {"object_type": "referral", "object_id": other.object_id}
    )

    assert [item["sequence"] for item in response.json()["results"]] == [other.sequence]


def test_denials_are_listed_with_their_outcome(cast: Cast) -> None:
    audit_denied(
        actor=cast.user("outsider"),
        action="referral.read",
        object_type="referral",
        object_id="6f0c2f4e-6a40-4a50-9bb4-1b7f1f3c0001",
    )

    response = client_for(cast, "admin").get(LIST, {"actor": str(cast.user("outsider").public_id)})

    assert [(item["action"], item["outcome"]) for item in response.json()["results"]] == [
        ("referral.read", "denied")
    ]


BAD_FILTERS = [
    {"actor": "not-a-uuid"},
    {"referral": "1"},
    {"patient": "'; drop table"},
    {"object_type": "Referral"},
    {"object_id": "x" * 65},
    {"page_size": "x", "referral": "nope"},
]


@pytest.mark.parametrize("path", [LIST, EXPORT])
def test_bad_filters_are_a_400_and_change_nothing(
    cast: Cast, trail: dict[str, Any], path: str
) -> None:
    before = AuditEvent.objects.count()
    client = client_for(cast, "admin")

    for query in BAD_FILTERS:
        response = client.get(path, query)

        assert response.status_code == 400, query
        assert response.json()["code"] == "invalid"
    assert AuditEvent.objects.count() == before


def test_pages_follow_the_cursor(cast: Cast) -> None:
    events = [
        audit_record(actor=None, action="referral.updated", object_type="referral", object_id="r")
        for _ in range(5)
    ]
    client = client_for(cast, "admin")

    first = client.get(LIST, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    sequences = [event.sequence for event in reversed(events)]
    assert [item["sequence"] for item in first["results"]] == sequences[:2]
    assert [item["sequence"] for item in second["results"]] == sequences[2:4]
    assert [item["sequence"] for item in third["results"]][:1] == sequences[4:5]
    assert first["previous"] is None
    assert "cursor=" in first["next"]


def test_the_list_query_count_does_not_grow_with_the_page_size(cast: Cast) -> None:
    for index in range(30):
        audit_record(
            actor=cast.user("provider"),
            action="referral.updated",
            object_type="referral",
            object_id=f"r-{index}",
        )
    client = client_for(cast, "admin")

    counts = []
    for page_size in (3, 30):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LIST, {"page_size": page_size})
        assert len(response.json()["results"]) == page_size
        counts.append(len(queries))

    assert counts[0] == counts[1]


def test_the_csv_export_is_audited_and_holds_no_phi_columns(
    cast: Cast, trail: dict[str, Any]
) -> None:
    response = client_for(cast, "admin").get(EXPORT, {"referral": str(trail["referral"])})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    assert "no-store" in response["Cache-Control"]
    rows = _csv(response)
    assert rows[0] == CSV_HEADER
    created, read, message, _other = trail["events"]
    assert [(row[0], row[4]) for row in rows[1:]] == [
        (str(message.sequence), "message.sent"),
        (str(read.sequence), "patient.read"),
        (str(created.sequence), "referral.created"),
    ]
    export = AuditEvent.objects.get(action="audit.exported")
    assert (export.actor, export.object_type, export.outcome) == (
        cast.user("admin"),
        "audit_trail",
        "allowed",
    )
    assert export.details == {"filter_referral": str(trail["referral"]), "rows": 3}


def test_the_export_of_the_whole_trail_stops_before_its_own_event(
    cast: Cast, trail: dict[str, Any]
) -> None:
    response = client_for(cast, "admin").get(EXPORT)

    rows = _csv(response)
    assert len(rows) == 1 + len(trail["events"])
    assert "audit.exported" not in [row[4] for row in rows]
    assert AuditEvent.objects.get(action="audit.exported").details == {"rows": 4}


def test_cells_that_would_be_spreadsheet_formulas_are_defused(cast: Cast) -> None:
    audit_record(
        actor=None,
        action="referral.updated",
        object_type="referral",
        object_id="=HYPERLINK(1)",
        details={"note": "+1"},
    )

    rows = _csv(client_for(cast, "admin").get(EXPORT, {"object_id": "=HYPERLINK(1)"}))

    assert rows[1][6] == "'=HYPERLINK(1)"


def test_an_export_asking_for_csv_still_gets_json_errors(cast: Cast) -> None:
    response = client_for(cast, "outsider").get(EXPORT, HTTP_ACCEPT="text/csv")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
