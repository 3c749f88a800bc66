"""Portal pages: outcomes, the session and assessment forms, the report page with its inline
charts, signing, the PDF download and the acknowledgement."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from reports import services
from reports.models import Assessment, InfusionSession, ProgressReport, ReportStatus
from tests.personas import ALL_PERSONAS, Cast
from tests.referrals.factories import referral_in_state
from tests.reports.helpers import phq9_answers, streamed
from tests.reports.test_api_access import Setup, build_setup

pytestmark = pytest.mark.django_db


def browser(cast: Cast, persona: str) -> Client:
    client = Client()
    user = cast[persona].user
    if user is not None:
        client.force_login(user)
    return client


def _assert_no_inline_script(html: str) -> None:
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []


def _local(minutes_ago: int) -> str:
    return (timezone.localtime() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")


def test_the_outcomes_page_over_the_cast(cast: Cast) -> None:
    setup = build_setup(cast)
    url = f"/reports/referrals/{setup.referral.public_id}/"
    expected = {
        "provider": 200, "colleague": 200, "staff": 200, "outsider": 404,
        "coordinator": 200, "clinician": 200, "admin": 200, "anonymous": 302,
    }  # fmt: skip
    for persona in ALL_PERSONAS:
        response = browser(cast, persona).get(url)
        assert response.status_code == expected[persona], persona
        if response.status_code != 200:
            assert setup.referral.number.encode() not in response.content
            continue
        html = response.content.decode()
        _assert_no_inline_script(html)
        clinician = persona == "clinician"
        assert ("Record an infusion session" in html) is clinician
        assert ("Request a progress report" in html) is clinician
        # The practice sees the signed version only; the clinic both.
        assert ("Version 2 (interim)" in html) is True
        assert ("Version 1 (interim)" in html) is (persona in {"coordinator", "clinician", "admin"})


def test_a_clinician_records_a_session_through_the_form(cast: Cast) -> None:
    referral = referral_in_state(cast, "scheduled")
    url = f"/reports/referrals/{referral.public_id}/infusions/new/"
    data = {
        "started_at": _local(90),
        "status": "completed",
        "weight_kg": "81.4",
        "dose_mg_per_kg": "0.5",
        "duration_minutes": "40",
        "route": "iv",
        "cadss_peak": "16",
        "vitals_0_minute": "0", "vitals_0_systolic": "124", "vitals_0_diastolic": "78",
        "vitals_0_heart_rate": "70", "vitals_0_spo2": "99",
        "adverse_events_0_term": "dizziness", "adverse_events_0_severity": "mild",
        "adverse_events_0_onset": "35", "adverse_events_0_action": "rest",
    }  # fmt: skip

    refused = browser(cast, "coordinator").post(url, data)
    response = browser(cast, "clinician").post(url, data)

    assert refused.status_code == 403
    assert response.status_code == 302
    assert response["Location"] == f"/reports/referrals/{referral.public_id}/"
    session = InfusionSession.objects.get()
    assert (str(session.total_mg), session.number, session.cadss_peak) == ("40.7", 1, 16)
    assert session.vitals == [
        {"minute": 0, "systolic": 124, "diastolic": 78, "heart_rate": 70, "spo2": 99}
    ]
    assert session.adverse_events[0]["term"] == "dizziness"
    referral.refresh_from_db()
    assert referral.status == "in_treatment"


def test_the_session_form_shows_the_services_errors_on_the_fields(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    response = browser(cast, "clinician").post(
        f"/reports/referrals/{referral.public_id}/infusions/new/",
        {
            "started_at": _local(30),
            "status": "held",
            "weight_kg": "81.4",
            "route": "iv",
            "vitals_0_minute": "0",
            "vitals_0_systolic": "400",
            "vitals_0_diastolic": "90",
            "vitals_0_heart_rate": "70",
            "vitals_0_spo2": "99",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Required when the session was held or stopped early." in html
    assert "Between 50 and 300." in html
    assert InfusionSession.objects.count() == 0


def test_a_clinician_records_a_phq9_and_a_bad_item_is_named(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    url = f"/reports/referrals/{referral.public_id}/assessments/new/?instrument=phq9"
    client = browser(cast, "clinician")

    form = client.get(url).content.decode()
    assert form.count('name="item_') == 9
    data = {"taken_at": _local(10)}
    data.update({f"item_{n}": str(v) for n, v in enumerate(phq9_answers(15, item9=1), start=1)})
    created = client.post(url, data)
    missing = client.post(url, {k: v for k, v in data.items() if k != "item_4"})

    assert created.status_code == 302
    assessment = Assessment.objects.get()
    assert (assessment.total, assessment.band, assessment.flags) == (
        15,
        "moderately_severe",
        ["phq9_item9"],
    )
    assert missing.status_code == 200
    assert "This field is required." in missing.content.decode()
    assert Assessment.objects.count() == 1


def test_the_report_page_shows_summary_charts_pdf_and_the_sign_form(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    setup: Setup = build_setup(cast)
    client = browser(cast, "clinician")
    with django_capture_on_commit_callbacks(execute=True):
        requested = client.post(
            f"/reports/referrals/{setup.referral.public_id}/reports/", {"kind": "final"}
        )
    report = ProgressReport.objects.get(version=3)
    assert requested["Location"] == f"/reports/{report.public_id}/"
    assert report.status == ReportStatus.READY

    html = client.get(f"/reports/{report.public_id}/").content.decode()

    _assert_no_inline_script(html)
    assert "Infusions completed: <strong>1 of 6 planned</strong>" in html
    assert html.count("<svg") == 1  # one instrument: the PHQ-9
    assert 'role="img"' in html
    assert "Sign and deliver" in html
    assert f"/reports/{report.public_id}/pdf/" in html
    assert browser(cast, "provider").get(f"/reports/{report.public_id}/").status_code == 404

    signed = client.post(
        f"/reports/{report.public_id}/sign/", {"interpretation": "Early response; continue."}
    )
    assert signed.status_code == 302
    report.refresh_from_db()
    assert report.is_signed
    setup.referral.refresh_from_db()
    assert setup.referral.status == "completed"

    provider = browser(cast, "provider")
    page = provider.get(f"/reports/{report.public_id}/").content.decode()
    assert "Early response; continue." in page
    assert "Acknowledge this report" in page
    pdf = provider.get(f"/reports/{report.public_id}/pdf/")
    assert pdf["Content-Disposition"].startswith("attachment;")
    assert streamed(pdf).startswith(b"%PDF-")
    acknowledged = provider.post(f"/reports/{report.public_id}/acknowledge/")
    assert acknowledged.status_code == 302
    setup.referral.refresh_from_db()
    assert setup.referral.status == "closed"
    assert (
        "Acknowledge this report"
        not in provider.get(f"/reports/{report.public_id}/").content.decode()
    )


def test_the_status_poll_reloads_the_page_once_the_report_is_done(cast: Cast) -> None:
    setup = build_setup(cast)
    referral = setup.referral
    queued = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    client = browser(cast, "clinician")

    waiting = client.get(f"/reports/{queued.public_id}/status/")
    page = client.get(f"/reports/{queued.public_id}/").content.decode()
    done = client.get(f"/reports/{setup.unsigned.public_id}/status/")

    assert "HX-Refresh" not in waiting
    assert 'hx-trigger="every 2s"' in waiting.content.decode()
    assert 'hx-get="/reports/' in page
    assert done["HX-Refresh"] == "true"
    assert browser(cast, "provider").get(f"/reports/{queued.public_id}/status/").status_code == 404
