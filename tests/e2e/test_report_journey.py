"""Journey: a clinician records six infusions and the PHQ-9s around them, requests the final
progress report, reviews its chart and signs it; the referring provider opens the report (the
chart is in the page), downloads the PDF, acknowledges it, and the referral closes. Both sign in
through the real login and TOTP step, under the strict CSP with no violation reported."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pypdf import PdfReader

from referrals import services as referral_services
from referrals.models import Referral, ReferralStatus
from reports.models import ProgressReport
from tests.e2e.helpers import sign_in
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data
from tests.reports.helpers import phq9_answers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (day, PHQ-9 total) taken at 09:00; infusions at 10:00 on the infusion days.
PHQ9_SERIES = ((-2, 20), (2, 16), (4, 13), (7, 10), (9, 9), (11, 8), (14, 7))
INFUSION_DAYS = (0, 2, 4, 7, 9, 11)
INTERPRETATION = "Response after six infusions (PHQ-9 20 to 7). Plan: maintenance every 4 weeks."


def watch_csp(page: Page) -> list[str]:
    violations: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    page.on("console", record)
    return violations


def referral_in_treatment(cast: Cast) -> Referral:
    """Created, submitted, triaged, accepted, scheduled and started through the services."""
    referral = referral_services.referral_create(
        actor=cast.user("provider"), data=complete_referral_data()
    )
    referral_services.referral_submit(actor=cast.user("provider"), referral=referral)
    referral_services.referral_review(actor=cast.user("coordinator"), referral=referral)
    referral_services.referral_accept(actor=cast.user("coordinator"), referral=referral)
    referral_services.referral_schedule(
        actor=cast.user("coordinator"),
        referral=referral,
        consult_at=timezone.now() + timedelta(days=1),
    )
    return referral_services.referral_start_treatment(
        actor=cast.user("clinician"), referral=referral
    )


def local(day0: datetime, day: int, hour: int) -> str:
    return (day0 + timedelta(days=day)).replace(hour=hour).strftime("%Y-%m-%dT%H:%M")


def record_phq9(page: Page, day0: datetime, day: int, total: int) -> None:
    page.get_by_role("link", name="Record an assessment").click()
    page.get_by_label("Instrument").select_option("phq9")
    page.get_by_role("button", name="Choose instrument").click()
    page.get_by_label("Taken").fill(local(day0, day, 9))
    for number, answer in enumerate(phq9_answers(total), start=1):
        page.locator(f"#id_item_{number}").select_option(str(answer))
    page.get_by_role("button", name="Record PHQ-9").click()
    expect(page.get_by_text("PHQ-9 recorded.")).to_be_visible()


def record_infusion(page: Page, day0: datetime, number: int, day: int) -> None:
    page.get_by_role("link", name="Record an infusion session").click()
    page.get_by_label("Start").fill(local(day0, day, 10))
    page.get_by_label("Weight (kg)").fill("72.5")
    page.get_by_label("Dose (mg/kg)").fill("0.5")
    page.get_by_label("Duration (minutes)").fill("40")
    page.get_by_label("CADSS peak").fill(str(20 - 2 * number))
    for row, (minute, systolic, diastolic, rate) in enumerate(
        ((0, 126, 80, 72), (40, 142, 88, 84), (60, 130, 82, 76))
    ):
        page.locator(f"#id_vitals_{row}_minute").fill(str(minute))
        page.locator(f"#id_vitals_{row}_systolic").fill(str(systolic))
        page.locator(f"#id_vitals_{row}_diastolic").fill(str(diastolic))
        page.locator(f"#id_vitals_{row}_heart_rate").fill(str(rate))
        page.locator(f"#id_vitals_{row}_spo2").fill("98")
    if number == 1:
        page.locator("#id_adverse_events_0_term").fill("nausea")
        page.locator("#id_adverse_events_0_severity").select_option("mild")
        page.locator("#id_adverse_events_0_action").fill("ondansetron 4 mg IV")
    page.get_by_role("button", name="Record session").click()
    expect(page.get_by_text(f"Session {number} recorded.")).to_be_visible()


def test_clinician_records_and_signs_the_referrer_reads_downloads_and_acknowledges(
    browser: Browser, live_server: Any, cast: Cast, tmp_path: Any
) -> None:
    base_url = str(live_server)
    referral = referral_in_treatment(cast)
    day0 = timezone.localtime() - timedelta(days=20)

    # --- the clinician --------------------------------------------------------------------
    clinician = browser.new_context().new_page()
    clinician_csp = watch_csp(clinician)
    sign_in(clinician, base_url, cast, "clinician")
    clinician.locator("#outcomes-nav").click()
    clinician.get_by_role("link", name=referral.number).click()
    expect(
        clinician.get_by_role("heading", name=f"Treatment outcomes: {referral.number}")
    ).to_be_visible()

    events = sorted(
        [(day, 9, "phq9", total) for day, total in PHQ9_SERIES]
        + [(day, 10, "infusion", number) for number, day in enumerate(INFUSION_DAYS, start=1)]
    )
    for day, _hour, kind, value in events:
        if kind == "phq9":
            record_phq9(clinician, day0, day, value)
        else:
            record_infusion(clinician, day0, value, day)

    sessions = clinician.get_by_role("table", name="Sessions in order; BP in mmHg")
    expect(sessions.locator("tbody tr")).to_have_count(6)
    expect(
        clinician.get_by_role("table", name="Scores, oldest first").locator("tbody tr")
    ).to_have_count(7)

    clinician.get_by_label("Kind").select_option("final")
    clinician.get_by_role("button", name="Request a progress report").click()
    expect(
        clinician.get_by_role(
            "heading", name=f"Final progress report, version 3: {referral.number}"
        )
    ).to_be_visible()
    expect(clinician.get_by_text("Status: Ready")).to_be_visible()
    summary = clinician.get_by_role("table", name="Outcome per instrument (change from baseline)")
    expect(
        summary.get_by_role(
            "row", name=re.compile(r"PHQ-9 \(primary\) 20 7 -65 % Response No infusion 3")
        )
    ).to_be_visible()
    expect(clinician.get_by_role("img", name=re.compile("PHQ-9"))).to_be_visible()
    clinician.get_by_label("Interpretation and recommendations").fill(INTERPRETATION)
    clinician.get_by_role("button", name="Sign and deliver").click()
    expect(
        clinician.get_by_text("Report signed and delivered to the referring provider.")
    ).to_be_visible()
    assert clinician_csp == []

    report = ProgressReport.objects.get(referral=referral, version=3)
    assert report.is_signed
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.COMPLETED

    # --- the referring provider ---------------------------------------------------------
    provider = browser.new_context(accept_downloads=True).new_page()
    provider_csp = watch_csp(provider)
    sign_in(provider, base_url, cast, "provider")
    provider.locator("#outcomes-nav").click()
    provider.get_by_role("link", name=referral.number).click()
    # Only the signed report is listed for the practice.
    provider.get_by_role("link", name="Version 3 (final)").click()
    expect(provider.get_by_text(INTERPRETATION)).to_be_visible()
    chart = provider.get_by_role("img", name=re.compile("PHQ-9"))
    expect(chart).to_be_visible()
    assert provider.locator("figure.chart svg").count() == 1

    with provider.expect_download() as download_info:
        provider.get_by_role("link", name="Download the PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"progress-report-{referral.number}-v3.pdf"
    path = tmp_path / "report.pdf"
    download.save_as(path)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Dana Example" in text
    assert "baseline 20 -> latest 7" in text
    assert "Response after six infusions" in text

    provider.get_by_role("button", name="Acknowledge this report").click()
    expect(provider.get_by_text("Report acknowledged.")).to_be_visible()
    expect(provider.get_by_role("button", name="Acknowledge this report")).to_have_count(0)
    assert provider_csp == []

    referral.refresh_from_db()
    assert referral.status == ReferralStatus.CLOSED
    provider.get_by_role("link", name="Back to outcomes").click()
    expect(provider.get_by_text("referral closed")).to_be_visible()
