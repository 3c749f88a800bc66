"""The access matrix: every outcomes and report endpoint, over the whole persona cast.

For each call: the status code; a refused call's body says nothing (no referral number, no
patient name, no report id); and a refused call changes nothing (rows, report states, allowed
audit events, notifications, e-mails, tasks enqueued on commit, stored files).

Decisions pinned here (reports/permissions.py): every party reads the outcomes data; only the
clinic's clinicians record sessions and assessments and request and sign reports; the practice
sees signed reports only (an unsigned one is 404, like a missing one); only the referring provider
acknowledges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.crypto.models import EncryptedFile
from referrals.models import Referral
from reports import services
from reports.models import Assessment, InfusionSession, ProgressReport
from tests.personas import ALL_PERSONAS, Cast
from tests.referrals.factories import (
    CANARY_FAMILY_NAME,
    CANARY_GIVEN_NAME,
    PatientFactory,
    referral_in_state,
)
from tests.referrals.helpers import Snapshot, api_client, enqueued
from tests.reports.helpers import phq9_answers, session, streamed

OK, CREATED, ACCEPTED, FORBIDDEN, NOT_FOUND = 200, 201, 202, 403, 404
ANONYMOUS = "anonymous"

EVERY_PARTY = {
    "provider": OK, "colleague": OK, "staff": OK, "outsider": NOT_FOUND,
    "coordinator": OK, "clinician": OK, "admin": OK,
}  # fmt: skip
CLINIC_ONLY = {**EVERY_PARTY, "provider": NOT_FOUND, "colleague": NOT_FOUND, "staff": NOT_FOUND}


def clinician_only(success: int) -> dict[str, int]:
    return {
        "provider": FORBIDDEN, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": success, "admin": FORBIDDEN,
    }  # fmt: skip


SIGN = {**clinician_only(OK), "provider": NOT_FOUND, "colleague": NOT_FOUND, "staff": NOT_FOUND}
ACKNOWLEDGE = {
    "provider": OK, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
    "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
}  # fmt: skip


@dataclass
class Setup:
    referral: Referral
    unsigned: ProgressReport
    signed: ProgressReport


def build_setup(cast: Cast) -> Setup:
    """A referral in treatment (canary patient) with a baseline, an infusion, a score after it,
    an unsigned ready report (version 1) and a signed one (version 2)."""
    patient = PatientFactory.create(
        practice=cast.practice,
        given_name=CANARY_GIVEN_NAME,
        family_name=CANARY_FAMILY_NAME,
        created_by=cast.user("provider"),
    )
    referral = referral_in_state(cast, "in_treatment", patient=patient)
    clinician = cast.user("clinician")
    start = timezone.localtime() - timedelta(days=3)
    infusion = session(0, start)
    # Relative to the infusion itself (10:00 that day), whatever time of day the test runs at.
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(18),
        taken_at=infusion.started_at - timedelta(hours=2),
    )
    services.infusion_session_record(actor=clinician, referral=referral, data=infusion)
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(9),
        taken_at=infusion.started_at + timedelta(days=1),
    )
    reports = []
    for _ in range(2):
        requested = services.report_request(actor=clinician, referral=referral, kind="interim")
        generated = services.report_generate(report_id=requested.public_id)
        assert generated is not None
        reports.append(generated)
    signed = services.report_sign(actor=clinician, report=reports[1], interpretation="Improving.")
    return Setup(referral=referral, unsigned=reports[0], signed=signed)


@dataclass(frozen=True)
class State:
    """Everything a refused call must leave as it was, beyond the referral Snapshot."""

    referrals: Snapshot
    sessions: int
    assessments: int
    reports: list[tuple[Any, ...]]
    files: int

    @classmethod
    def take(cls) -> State:
        return cls(
            referrals=Snapshot.take(),
            sessions=InfusionSession.objects.count(),
            assessments=Assessment.objects.count(),
            reports=list(
                ProgressReport.objects.order_by("pk").values_list(
                    "pk", "status", "signed_at", "acknowledged_at", "updated_at", "pdf_sha256"
                )
            ),
            files=EncryptedFile.objects.count(),
        )


def _expect(persona: str, table: dict[str, int]) -> int:
    return 0 if persona == ANONYMOUS else table[persona]


def _assert_refused(response: Any, setup: Setup, before: State, callbacks: list[Any]) -> None:
    body = response.content.decode()
    for secret in (
        setup.referral.number,
        str(setup.unsigned.public_id),
        str(setup.signed.public_id),
        CANARY_GIVEN_NAME,
        CANARY_FAMILY_NAME,
    ):
        assert secret not in body
    assert set(response.json()) <= {"detail", "code"}
    assert State.take() == before
    assert enqueued(callbacks) == []


def _check(response: Any, expected: int, setup: Setup, before: State, callbacks: list[Any]) -> None:
    if expected == 0:
        assert response.status_code in {401, 403}
        assert response.json()["code"] == "not_authenticated"
        _assert_refused(response, setup, before, callbacks)
        return
    assert response.status_code == expected, response.content
    if expected == NOT_FOUND:
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    if expected in {NOT_FOUND, FORBIDDEN}:
        _assert_refused(response, setup, before, callbacks)


def _infusion_body(setup: Setup) -> dict[str, Any]:
    started = timezone.localtime() - timedelta(hours=1)
    return {
        "started_at": started.isoformat(),
        "weight_kg": 80.0,
        "dose_mg_per_kg": 0.5,
        "duration_minutes": 40,
        "vitals": [{"minute": 0, "systolic": 126, "diastolic": 80, "heart_rate": 72, "spo2": 98}],
    }


def _assessment_body(setup: Setup) -> dict[str, Any]:
    return {
        "instrument": "phq9",
        "answers": phq9_answers(7),
        "taken_at": (timezone.localtime() - timedelta(minutes=5)).isoformat(),
    }


def _referral_path(tail: str) -> Callable[[Setup], str]:
    return lambda s: f"/api/v1/referrals/{s.referral.public_id}/{tail}/"


READS: list[tuple[str, Callable[[Setup], str], dict[str, int]]] = [
    ("assessments", _referral_path("assessments"), EVERY_PARTY),
    ("infusions", _referral_path("infusions"), EVERY_PARTY),
    ("reports", _referral_path("reports"), EVERY_PARTY),
    ("unsigned detail", lambda s: f"/api/v1/reports/{s.unsigned.public_id}/", CLINIC_ONLY),
    ("unsigned pdf", lambda s: f"/api/v1/reports/{s.unsigned.public_id}/pdf/", CLINIC_ONLY),
    ("unsigned fhir", lambda s: f"/api/v1/reports/{s.unsigned.public_id}/fhir/", CLINIC_ONLY),
    ("signed detail", lambda s: f"/api/v1/reports/{s.signed.public_id}/", EVERY_PARTY),
    ("signed pdf", lambda s: f"/api/v1/reports/{s.signed.public_id}/pdf/", EVERY_PARTY),
    ("signed fhir", lambda s: f"/api/v1/reports/{s.signed.public_id}/fhir/", EVERY_PARTY),
]  # fmt: skip

Body = Callable[[Setup], dict[str, Any]]
WRITES: list[tuple[str, Callable[[Setup], str], Body, dict[str, int]]] = [
    ("record infusion", _referral_path("infusions"), _infusion_body, clinician_only(CREATED)),
    ("record assessment", _referral_path("assessments"), _assessment_body,
     clinician_only(CREATED)),
    ("request report", _referral_path("reports"), lambda s: {"kind": "interim"},
     clinician_only(ACCEPTED)),
    ("sign", lambda s: f"/api/v1/reports/{s.unsigned.public_id}/sign/",
     lambda s: {"interpretation": "Partial improvement so far."}, SIGN),
    ("acknowledge", lambda s: f"/api/v1/reports/{s.signed.public_id}/acknowledge/",
     lambda s: {}, ACKNOWLEDGE),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "table"), READS, ids=[r[0] for r in READS])
def test_reads(
    cast: Cast,
    name: str,
    path: Callable[[Setup], str],
    table: dict[str, int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    setup = build_setup(cast)
    url = path(setup)
    for persona in ALL_PERSONAS:
        before = State.take()
        expected = _expect(persona, table)
        with django_capture_on_commit_callbacks() as callbacks:
            response = api_client(cast, persona).get(url)
        _check(response, expected, setup, before, callbacks)
        if expected == OK:
            assert enqueued(callbacks) == []
            assert State.take().reports == before.reports
            if name.endswith("pdf"):
                assert response["Content-Type"] == "application/pdf"
                assert response["Content-Disposition"].startswith("attachment;")
                assert streamed(response).startswith(b"%PDF-")
            elif name.endswith("fhir") or name in {"assessments", "infusions"}:
                # Clinical detail: the read left an audit event by this persona.
                assert AuditEvent.objects.filter(
                    actor=cast.user(persona), action__endswith=".read", outcome="allowed"
                ).exists()


@pytest.mark.parametrize(("name", "path", "body", "table"), WRITES, ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_writes(
    cast: Cast,
    persona: str,
    name: str,
    path: Callable[[Setup], str],
    body: Callable[[Setup], dict[str, Any]],
    table: dict[str, int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    setup = build_setup(cast)
    before = State.take()
    expected = _expect(persona, table)

    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client(cast, persona).post(path(setup), body(setup), format="json")

    _check(response, expected, setup, before, callbacks)
    after = State.take()
    if name == "record infusion" and expected == CREATED:
        assert after.sessions == before.sessions + 1
        assert response.json()["total_mg"] == 40.0
    if name == "record assessment" and expected == CREATED:
        assert after.assessments == before.assessments + 1
        assert (response.json()["total"], response.json()["band"]) == (7, "mild")
    if name == "request report" and expected == ACCEPTED:
        created = ProgressReport.objects.get(public_id=response.json()["id"])
        assert response.json() == {
            "id": str(created.public_id), "status": "queued", "kind": "interim", "version": 3,
        }  # fmt: skip
        assert len(enqueued(callbacks)) == 1
    if name == "sign" and expected == OK:
        setup.unsigned.refresh_from_db()
        assert setup.unsigned.signed_by == cast.user("clinician")
        assert response.json()["interpretation"] == "Partial improvement so far."
    if name == "acknowledge" and expected == OK:
        setup.signed.refresh_from_db()
        assert setup.signed.acknowledged_by == cast.user("provider")


@pytest.mark.parametrize("persona", ["provider", "outsider", "coordinator"])
def test_a_refused_read_of_an_existing_report_is_audited_and_looks_missing(
    cast: Cast, persona: str
) -> None:
    setup = build_setup(cast)
    missing = "6f1c1c0e-9a63-4c4f-8f59-1b0c2a3d4e5f"

    existing = api_client(cast, persona).get(f"/api/v1/reports/{setup.unsigned.public_id}/")
    absent = api_client(cast, persona).get(f"/api/v1/reports/{missing}/")

    denied = list(
        AuditEvent.objects.filter(outcome="denied", action="progress_report.read").values_list(
            "object_id", flat=True
        )
    )
    if persona == "coordinator":
        assert existing.status_code == 200
        assert denied == []
    else:
        assert existing.status_code == absent.status_code == NOT_FOUND
        assert existing.json() == absent.json()
        assert denied == [str(setup.unsigned.public_id)]
