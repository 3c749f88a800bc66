"""The outcomes and reports API: shapes, validation (4xx, never a change), lifecycle, FHIR."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from portal.audit.models import AuditEvent
from portal.crypto.storage import stored_file_path
from referrals.models import ReferralStatus
from reports import services
from reports.models import Assessment, InfusionSession, ProgressReport
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.referrals.helpers import api_client
from tests.reports.helpers import phq9_answers, record_course, session, streamed
from tests.reports.test_api_access import State, build_setup

pytestmark = pytest.mark.django_db


def _post(cast: Cast, persona: str, url: str, body: Any, **kwargs: Any) -> Any:
    return api_client(cast, persona).post(url, body, format="json", **kwargs)


def _now_iso(minutes_ago: int = 5) -> str:
    return (timezone.localtime() - timedelta(minutes=minutes_ago)).isoformat()


# --- assessments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "item", "detail"),
    [
        ([1] * 8, None, "PHQ-9 needs 9 answers, got 8."),
        ([1, 1, None, 1, 1, 1, 1, 1, 1], 3,
         "Item 3 is missing; it must be an integer from 0 to 3."),
        ([1, 1, 1, 1, 1, 1, 1, 1, 4], 9, "Item 9 must be an integer from 0 to 3, got 4."),
        (["3", 1, 1, 1, 1, 1, 1, 1, 1], 1, "Item 1 must be an integer from 0 to 3, got '3'."),
        ([True, 1, 1, 1, 1, 1, 1, 1, 1], 1, "Item 1 must be an integer from 0 to 3, got True."),
        ([-1, 1, 1, 1, 1, 1, 1, 1, 1], 1, "Item 1 must be an integer from 0 to 3, got -1."),
    ],
)  # fmt: skip
def test_a_bad_answer_set_is_refused_naming_the_item(
    cast: Cast, answers: list[Any], item: int | None, detail: str
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    before = State.take()

    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/assessments/",
        {"instrument": "phq9", "answers": answers, "taken_at": _now_iso()},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == detail
    assert body["code"] == "invalid_answers"
    assert body["item"] == item
    assert State.take() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instrument": "phq9", "answers": [0] * 9, "taken_at": "2026-01-01T10:00:00"},
         "taken_at"),
        ({"instrument": "phq10", "answers": [0] * 9, "taken_at": "2026-01-01T10:00:00Z"},
         "instrument"),
        ({"instrument": "phq9", "answers": "000000000", "taken_at": "2026-01-01T10:00:00Z"},
         "answers"),
        ({"instrument": "phq9", "answers": [0] * 9, "taken_at": "2026-01-01T10:00:00Z",
          "total": 0}, "total"),
        ({"instrument": "phq9", "answers": [0] * 9}, "taken_at"),
    ],
)  # fmt: skip
def test_malformed_assessments_are_refused(cast: Cast, body: dict[str, Any], field: str) -> None:
    referral = referral_in_state(cast, "in_treatment")
    before = State.take()

    response = _post(
        cast, "clinician", f"/api/v1/referrals/{referral.public_id}/assessments/", body
    )

    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert State.take() == before


def test_an_assessment_in_the_future_is_refused(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    future = (timezone.localtime() + timedelta(hours=2)).isoformat()

    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/assessments/",
        {"instrument": "phq9", "answers": [0] * 9, "taken_at": future},
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"taken_at": "Must not be in the future."}
    assert Assessment.objects.count() == 0


def test_malformed_json_is_a_400(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    response = api_client(cast, "clinician").post(
        f"/api/v1/referrals/{referral.public_id}/assessments/",
        data=b'{"instrument": "phq9",',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert Assessment.objects.count() == 0


def test_a_cssrs_screener_is_recorded_with_its_suggested_level_and_flag(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")

    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/assessments/",
        {
            "instrument": "cssrs_screen",
            "answers": [True, True, True, False, False, False],
            "taken_at": _now_iso(),
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["total"], body["band"], body["flags"]) == (None, "moderate", ["cssrs_moderate"])


def test_assessments_are_refused_once_treatment_is_completed(cast: Cast) -> None:
    referral = referral_in_state(cast, "completed")
    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/assessments/",
        {"instrument": "phq9", "answers": [0] * 9, "taken_at": _now_iso()},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert Assessment.objects.count() == 0


# --- infusion sessions -------------------------------------------------------------------------


def _session_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "started_at": _now_iso(60),
        "weight_kg": 77.3,
        "dose_mg_per_kg": 0.5,
        "duration_minutes": 40,
        "route": "iv",
        "vitals": [
            {"minute": 0, "systolic": 126, "diastolic": 80, "heart_rate": 72, "spo2": 98},
            {"minute": 40, "systolic": 141, "diastolic": 88, "heart_rate": 84, "spo2": 97},
        ],
        "cadss_peak": 14,
        "adverse_events": [
            {"term": "nausea", "severity": "mild", "onset": 30,
             "resolution": "resolved by minute 60", "action": "ondansetron 4 mg"}
        ],
    }  # fmt: skip
    body.update(overrides)
    return body


def test_recording_the_first_infusion_starts_treatment(cast: Cast) -> None:
    referral = referral_in_state(cast, "scheduled")

    response = _post(
        cast, "clinician", f"/api/v1/referrals/{referral.public_id}/infusions/", _session_body()
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1
    assert body["total_mg"] == 38.7  # 77.3 kg x 0.5 mg/kg = 38.65, rounded half up
    assert (body["bp_systolic_max"], body["bp_diastolic_max"]) == (140, 90)
    assert body["adverse_events"][0]["action"] == "ondansetron 4 mg"
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.IN_TREATMENT
    assert referral.events.filter(kind="treatment_started").count() == 1


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"status": "held"},
         {"status_reason": "Required when the session was held or stopped early."}),
        ({"dose_mg_per_kg": None}, {"dose_mg_per_kg":
            "Between 0.05 and 2.00 mg/kg (required unless the session was held)."}),
        ({"weight_kg": 12}, {"weight_kg": "Between 20 and 350 kg."}),
        ({"vitals": [{"minute": 0, "systolic": 80, "diastolic": 90, "heart_rate": 72,
                      "spo2": 98}]},
         {"vitals.0.diastolic": "Must be lower than the systolic pressure."}),
        ({"vitals": [{"minute": 0, "systolic": 320, "diastolic": 90, "heart_rate": 72,
                      "spo2": 98}]},
         {"vitals.0.systolic": "Between 50 and 300."}),
        ({"adverse_events": [{"term": "nausea", "severity": "awful", "action": "none"}]}, None),
        ({"cadss_peak": 93}, {"cadss_peak": "Between 0 and 92."}),
    ],
)  # fmt: skip
def test_bad_sessions_are_refused_with_the_field_named(
    cast: Cast, overrides: dict[str, Any], fields: dict[str, str] | None
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    before = State.take()

    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/infusions/",
        _session_body(**overrides),
    )

    assert response.status_code == 400, response.content
    if fields is not None:
        assert response.json()["fields"] == fields
    else:
        assert "adverse_events" in response.json()["detail"]
    assert State.take() == before


def test_a_held_session_is_recorded_without_dose_and_does_not_count_as_an_infusion(
    cast: Cast,
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    response = _post(
        cast,
        "clinician",
        f"/api/v1/referrals/{referral.public_id}/infusions/",
        _session_body(
            status="held",
            status_reason="Pre-dose BP 150/95",
            dose_mg_per_kg=None,
            duration_minutes=None,
            adverse_events=[],
        ),
    )
    assert response.status_code == 201, response.content
    assert (response.json()["total_mg"], response.json()["status"]) == (None, "held")


def test_sessions_are_recorded_in_time_order(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    url = f"/api/v1/referrals/{referral.public_id}/infusions/"
    assert _post(cast, "clinician", url, _session_body(started_at=_now_iso(60))).status_code == 201

    response = _post(cast, "clinician", url, _session_body(started_at=_now_iso(120)))

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "started_at": "Must be after session 1 (sessions are in order)."
    }
    assert InfusionSession.objects.count() == 1


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["assessments", "infusions", "reports"])
def test_list_queries_do_not_grow_with_the_number_of_rows(cast: Cast, path: str) -> None:
    setup = build_setup(cast)
    url = f"/api/v1/referrals/{setup.referral.public_id}/{path}/"
    client = api_client(cast, "clinician")
    with CaptureQueriesContext(connection) as few:
        first = client.get(url)
    clinician = cast.user("clinician")
    start = timezone.localtime() - timedelta(hours=20)
    for hour in range(3):
        services.assessment_record(
            actor=clinician,
            referral=setup.referral,
            instrument="phq9",
            answers=phq9_answers(5 + hour),
            taken_at=start + timedelta(hours=hour),
        )
        services.infusion_session_record(
            actor=clinician,
            referral=setup.referral,
            data=replace(session(0), started_at=start + timedelta(hours=hour, minutes=30)),
        )
        services.report_request(actor=clinician, referral=setup.referral, kind="interim")
    with CaptureQueriesContext(connection) as many:
        second = client.get(url)

    # Three of each; the third infusion also requested an interim report automatically.
    added = {"assessments": 3, "infusions": 3, "reports": 4}[path]
    assert len(second.json()["results"]) == len(first.json()["results"]) + added
    assert len(many.captured_queries) == len(few.captured_queries)


# --- reports -------------------------------------------------------------------------------------


def test_the_report_detail_has_the_design_summary_shape(cast: Cast) -> None:
    setup = build_setup(cast)

    response = api_client(cast, "provider").get(f"/api/v1/reports/{setup.signed.public_id}/")

    assert response.status_code == 200
    body = response.json()
    assert {"id", "kind", "version", "status", "signed_at", "acknowledged_at", "summary"} <= set(
        body
    )
    assert (body["kind"], body["version"], body["status"]) == ("interim", 2, "ready")
    summary = body["summary"]
    assert summary["infusions_completed"] == 1
    assert summary["infusions_planned"] == 6
    assert summary["flags"] == []
    assert summary["instruments"]["phq9"] == {
        "baseline": 18, "latest": 9, "change_percent": -50, "response": True,
        "partial_response": False, "remission": False, "time_to_response": 1,
        "status": "response", "note": "",
    }  # fmt: skip
    assert body["pdf_sha256"] == setup.signed.signed_pdf_sha256
    assert body["input_hash"] == setup.signed.input_hash
    assert body["interpretation"] == "Improving."


def test_a_queued_report_has_no_summary_and_its_pdf_is_not_ready(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    client = api_client(cast, "clinician")

    detail = client.get(f"/api/v1/reports/{report.public_id}/").json()
    pdf = client.get(f"/api/v1/reports/{report.public_id}/pdf/")
    sign = _post(cast, "clinician", f"/api/v1/reports/{report.public_id}/sign/",
                 {"interpretation": "x"})  # fmt: skip

    assert (detail["status"], detail["summary"], detail["pdf_sha256"]) == ("queued", None, None)
    assert (pdf.status_code, pdf.json()["code"]) == (409, "report_not_ready")
    assert (sign.status_code, sign.json()["code"]) == (409, "report_not_ready")


def test_a_tampered_pdf_is_not_sent(cast: Cast) -> None:
    setup = build_setup(cast)
    path = stored_file_path(setup.signed.signed_pdf_name)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))

    response = api_client(cast, "provider").get(f"/api/v1/reports/{setup.signed.public_id}/pdf/")

    assert response.status_code == 500
    assert response.json()["code"] == "report_unavailable"
    assert b"%PDF" not in response.content


def test_the_pdf_is_the_one_whose_hash_is_stored(cast: Cast) -> None:
    setup = build_setup(cast)
    response = api_client(cast, "provider").get(f"/api/v1/reports/{setup.signed.public_id}/pdf/")
    data = streamed(response)
    assert hashlib.sha256(data).hexdigest() == setup.signed.signed_pdf_sha256
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"] == (
        f'attachment; filename="progress-report-{setup.referral.number}-v2.pdf"'
    )


def test_signing_twice_and_acknowledging_twice_conflict_and_change_nothing(cast: Cast) -> None:
    setup = build_setup(cast)
    url = f"/api/v1/reports/{setup.signed.public_id}/"
    before = State.take()

    sign = _post(cast, "clinician", url + "sign/", {"interpretation": "Changed my mind."})

    assert (sign.status_code, sign.json()["code"]) == (409, "already_signed")
    assert State.take() == before
    assert _post(cast, "provider", url + "acknowledge/", {}).status_code == 200
    after_first = State.take()
    again = _post(cast, "provider", url + "acknowledge/", {})
    assert (again.status_code, again.json()["code"]) == (409, "already_acknowledged")
    assert State.take() == after_first
    setup.signed.refresh_from_db()
    assert setup.signed.interpretation == "Improving."


def test_signing_the_final_report_completes_and_acknowledging_it_closes_the_referral(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    record_course(cast.user("clinician"), referral)
    with django_capture_on_commit_callbacks(execute=True):
        created = _post(
            cast, "clinician", f"/api/v1/referrals/{referral.public_id}/reports/", {"kind": "final"}
        )
    assert created.status_code == 202
    report_id = created.json()["id"]
    # Generated on commit (Celery runs in-process in the tests).
    assert (
        api_client(cast, "clinician").get(f"/api/v1/reports/{report_id}/").json()["status"]
        == "ready"
    )

    signed = _post(
        cast,
        "clinician",
        f"/api/v1/reports/{report_id}/sign/",
        {"interpretation": "Response after six infusions; maintenance every 4 weeks."},
    )
    assert signed.status_code == 200
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.COMPLETED

    acknowledged = _post(cast, "provider", f"/api/v1/reports/{report_id}/acknowledge/", {})
    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"]["id"] == str(cast.user("provider").public_id)
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.CLOSED
    kinds = list(referral.events.values_list("kind", flat=True))
    assert kinds[-4:] == ["report_ready", "completed", "report_signed", "closed"]


def test_the_fhir_bundle_validates_as_r4_with_loinc_codes(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    record_course(cast.user("clinician"), referral)
    report = services.report_request(actor=cast.user("clinician"), referral=referral, kind="final")
    generated = services.report_generate(report_id=report.public_id)
    assert generated is not None
    services.report_sign(actor=cast.user("clinician"), report=generated, interpretation="Good.")

    response = api_client(cast, "provider").get(f"/api/v1/reports/{report.public_id}/fhir/")

    assert response.status_code == 200
    data = response.json()
    bundle = Bundle.model_validate(data)
    assert bundle.entry is not None
    resources = [entry.resource for entry in bundle.entry]
    by_type: dict[str, list[Any]] = {}
    for resource in resources:
        assert resource is not None
        by_type.setdefault(resource.get_resource_type(), []).append(resource)
    assert sorted(by_type) == ["DiagnosticReport", "DocumentReference", "Observation", "Patient"]
    diagnostic = by_type["DiagnosticReport"][0]
    assert diagnostic.status == "final"
    assert diagnostic.conclusion == "Good."
    codes = [
        coding.code
        for observation in by_type["Observation"]
        for coding in (observation.code.coding or [])
    ]
    # Eight PHQ-9 scores (a panel and a total each) and two GAD-7 totals.
    assert codes.count("44249-1") == 8
    assert codes.count("44261-6") == 8
    assert codes.count("70274-6") == 2
    assert len(diagnostic.result) == 18
    phq9_totals = sorted(
        o.valueInteger for o in by_type["Observation"]
        if o.code.coding and o.code.coding[0].code == "44261-6"
    )  # fmt: skip
    assert phq9_totals == [8, 9, 11, 14, 16, 19, 21, 23]
    document = by_type["DocumentReference"][0]
    attachment = document.content[0].attachment
    assert attachment.contentType == "application/pdf"
    assert str(attachment.url).endswith(f"/api/v1/reports/{report.public_id}/pdf/")
    assert document.docStatus == "final"
    assert AuditEvent.objects.filter(
        actor=cast.user("provider"), action="progress_report.read"
    ).exists()
    assert ProgressReport.objects.get(pk=report.pk).acknowledged_at is None
