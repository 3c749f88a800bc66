"""The summary of a realistic course, exact values, and the PDF built from it."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.conf import settings

from portal.crypto.models import EncryptedFile
from reports import services
from reports.content import canonical_json
from reports.models import ProgressReport, ReportStatus
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.reports.helpers import pdf_text, record_course, report_pdf_bytes

pytestmark = pytest.mark.django_db

EXPECTED_SUMMARY = {
    "infusions_completed": 6,
    "infusions_held": 1,
    "infusions_planned": 6,
    "primary_instrument": "phq9",
    "status": "response",
    "instruments": {
        "phq9": {
            "baseline": 19,
            "latest": 8,
            "change_percent": -58,
            "response": True,
            "partial_response": False,
            "remission": False,
            "time_to_response": 5,
            "status": "response",
            "note": "",
        },
        "gad7": {
            "baseline": 14,
            "latest": 6,
            "change_percent": -57,
            "response": True,
            "partial_response": False,
            "remission": None,
            "time_to_response": 6,
            "status": "response",
            "note": "GAD-7 has no remission rule.",
        },
    },
    "flags": ["phq9_item9"],
    "thresholds": {
        "response_drop_percent": 50,
        "partial_response_low_percent": 25,
        "phq9_remission_max": 4,
        "qids_remission_max": 5,
        "madrs_remission_max": 10,
        "baseline_window_days": 14,
        "bp_systolic_max": 140,
        "bp_diastolic_max": 90,
    },
}


def _generated(cast: Cast, kind: str = "interim") -> ProgressReport:
    referral = referral_in_state(cast, "in_treatment")
    record_course(cast.user("clinician"), referral)
    report = services.report_request(actor=cast.user("clinician"), referral=referral, kind=kind)
    generated = services.report_generate(report_id=report.public_id)
    assert generated is not None
    return generated


def test_the_summary_of_a_realistic_course_has_exact_values(cast: Cast) -> None:
    report = _generated(cast)

    assert report.status == ReportStatus.READY
    assert report.summary == EXPECTED_SUMMARY
    # Infusions 3 and 6 each requested an interim report before this one.
    assert report.version == 3


def test_the_input_hash_is_the_sha256_of_the_canonical_snapshot(cast: Cast) -> None:
    report = _generated(cast)

    snapshot = report.input_snapshot
    assert report.input_hash == hashlib.sha256(canonical_json(snapshot)).hexdigest()
    assert snapshot["settings"]["baseline_window_days"] == 14
    assert [item["status"] for item in snapshot["infusions"]] == [
        "completed", "completed", "completed", "held", "completed", "completed", "completed",
    ]  # fmt: skip
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert json.loads(canonical_json(snapshot)) == snapshot


def test_the_pdf_opens_and_shows_patient_scores_status_methods_and_chart(cast: Cast) -> None:
    report = _generated(cast)

    data = report_pdf_bytes(report)
    assert hashlib.sha256(data).hexdigest() == report.pdf_sha256
    assert len(data) == report.pdf_size
    text = pdf_text(data)
    assert "Dana Example" in text  # the patient
    assert report.referral.number in text
    assert "Response" in text  # the bottom-line status
    assert "baseline 19 -> latest 8" in text
    assert "-58%" in text
    assert "6 / 6" in text  # infusions completed / planned
    assert "PHQ-9 item 9" in text  # the safety flag
    assert "Methods" in text
    assert "a drop of 50 % or more from baseline" in text
    assert "at most 14 days before it" in text
    # The charts: their titles, infusion markers legend and remission line label are drawn.
    assert "Dashed lines 1-6: infusion dates" in text
    assert "Remission: total 4 or less" in text
    assert "Held, not given: Pre-dose BP 152/96 above 140/90" in text
    assert "DRAFT: clinician interpretation not yet signed" in text


def test_generating_twice_stores_one_pdf(cast: Cast) -> None:
    report = _generated(cast)
    first = (report.pdf_name, report.pdf_sha256, report.input_hash, report.attempts)

    again = services.report_generate(report_id=report.public_id)

    assert again is not None
    assert (again.pdf_name, again.pdf_sha256, again.input_hash, again.attempts) == first
    owned = EncryptedFile.objects.filter(owner_id=str(report.public_id))
    assert owned.count() == 1
    folder = settings.MEDIA_ROOT / "encrypted" / services.REPORT_FILE_PURPOSE
    assert len(list(folder.iterdir())) == 1
