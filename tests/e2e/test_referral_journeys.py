"""Journeys through the referral pages in a real browser, signed in with password and TOTP:

1. a provider fills in the wizard (leaving and coming back to the draft on the way), attaches a
   record and submits a complete referral;
2. a coordinator picks a referral up and asks a question, the provider answers, the coordinator
   accepts and schedules the consult, and the provider sees each change on the referral's page
   and in the list.

Both run under the strict CSP and fail on any violation reported to the console.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, expect

from referrals import services
from referrals.models import Attachment, Referral
from tests.e2e.helpers import sign_in
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PHQ9 = [
    "Several days",
    "More than half the days",
    "Nearly every day",
    "Several days",
    "Not at all",
    "More than half the days",
    "Several days",
    "Several days",
    "Not at all",
]
QUESTION = "Could you attach the latest psychiatric evaluation?"
ANSWER = "Attached to the messages today; the evaluation is from last month."


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class CspWatch:
    def __init__(self) -> None:
        self.violations: list[str] = []

    def attach(self, page: Page) -> Page:
        def record(message: ConsoleMessage) -> None:
            if (
                "Content Security Policy" in message.text
                or "Content-Security-Policy" in message.text
            ):
                self.violations.append(message.text)

        page.on("console", record)
        return page


def new_page(browser: Browser, csp: CspWatch) -> tuple[BrowserContext, Page]:
    context = browser.new_context()
    return context, csp.attach(context.new_page())


def status_badge(page: Page) -> Locator:
    return page.locator("#referral-status .status")


def list_row(page: Page, referral: Referral) -> Locator:
    return page.locator(f'tr[data-referral="{referral.public_id}"]')


def test_a_provider_submits_a_complete_referral_with_an_attachment(
    browser: Browser, live_server: Any, cast: Cast, tmp_path: Path
) -> None:
    base_url = str(live_server)
    csp = CspWatch()
    _context, page = new_page(browser, csp)
    sign_in(page, base_url, cast, "provider")

    # Step 1: the patient. Saving creates the draft.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Referrals").click()
    page.get_by_role("link", name="Start a new referral").click()
    expect(page.get_by_role("heading", name="New referral: Patient")).to_be_visible()
    page.get_by_label("Given name").fill("Dana")
    page.get_by_label("Family name").fill("Example")
    page.get_by_label("Date of birth").fill("1984-05-17")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Phone").fill("+1 407 555 0100")
    page.get_by_label("Insurance payer").fill("Florida Blue")
    page.get_by_role("button", name="Save and continue").click()
    history = re.compile(r"^Referral R-\d{4}-\d{5}: History and prior trials$")
    expect(page.get_by_role("heading", name=history)).to_be_visible()
    # Read only once the page has answered: the live server and this thread share the database.
    referral = Referral.objects.get()

    # Step 2: history and two prior trials (the second row added with the button).
    page.get_by_label("Reason for referral").fill("Recurrent depression after two trials.")
    page.get_by_label("Diagnosis codes (ICD-10)").fill("F33.2")
    page.get_by_label("Length of the current episode (months)").fill("14")
    first = page.locator("#trial-1")
    first.get_by_label("Drug").fill("sertraline")
    first.get_by_label("Highest daily dose (mg)").fill("200")
    first.get_by_label("Weeks at that dose").fill("8")
    first.get_by_label("Adherence").select_option("good")
    first.get_by_label("Outcome").select_option("no_response")
    page.get_by_role("button", name="Add another trial").click()
    second = page.locator("#trial-2")
    expect(second.get_by_label("Drug")).to_be_focused()
    expect(first.get_by_label("Drug")).to_have_value("sertraline")
    second.get_by_label("Drug").fill("venlafaxine XR")
    second.get_by_label("Highest daily dose (mg)").fill("225")
    second.get_by_label("Weeks at that dose").fill("6")
    second.get_by_label("Adherence").select_option("good")
    second.get_by_label("Outcome").select_option("partial_response")
    page.get_by_label("Current medications").fill("bupropion XL 300 mg daily")
    page.get_by_label("Allergies").fill("none known")
    page.get_by_label("Systolic (mmHg)").fill("128")
    page.get_by_label("Diastolic (mmHg)").fill("82")
    page.get_by_label("Heart rate (beats per minute)").fill("76")
    page.get_by_role("button", name="Save and continue").click()
    expect(
        page.get_by_role("heading", name=f"Referral {referral.number}: Screening")
    ).to_be_visible()

    # Leave, and come back to the draft where it is still incomplete.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Referrals").click()
    list_row(page, referral).get_by_role("link", name=referral.number).click()
    expect(status_badge(page)).to_have_text("Draft")
    page.get_by_role("link", name="Continue the referral").click()
    expect(
        page.get_by_role("heading", name=f"Referral {referral.number}: Screening")
    ).to_be_visible()

    # Step 3: screening. The crisis notice appears only with a "yes" to active suicidal intent.
    for index, answer in enumerate(PHQ9):
        page.get_by_role("group", name=re.compile(rf"^{index + 1}\. ")).get_by_label(
            answer, exact=True
        ).check()
    checklist = page.locator(".checklist").first
    for group in checklist.get_by_role("group").all():
        group.get_by_label("No", exact=True).check()
    safety = page.get_by_role("group", name=re.compile("active suicidal intent"))
    preview = page.locator(".crisis-preview")
    safety.get_by_label("Yes", exact=True).check()
    expect(preview).to_be_visible()
    safety.get_by_label("No", exact=True).check()
    expect(preview).to_be_hidden()
    page.get_by_role("button", name="Save and continue").click()
    expect(
        page.get_by_role("heading", name=f"Referral {referral.number}: Attachments")
    ).to_be_visible()

    # Step 4: attach a record.
    letter = tmp_path / "psychiatric-evaluation.pdf"
    letter.write_bytes(PDF_BYTES)
    page.get_by_label("Add a record").set_input_files(str(letter))
    page.get_by_role("button", name="Upload the file").click()
    expect(page.get_by_text("The file was uploaded and stored encrypted.")).to_be_visible()
    expect(page.get_by_role("link", name="psychiatric-evaluation.pdf")).to_be_visible()

    # Step 5: review (the consent is the last thing missing) and submit.
    page.get_by_role("link", name="Continue to review").click()
    problems = page.locator("#problems")
    expect(problems.get_by_role("link")).to_have_count(1)
    expect(problems.get_by_role("link")).to_contain_text("Consent")
    expect(page.get_by_text("2: meets the treatment-resistant depression count")).to_be_visible()
    page.get_by_label("I attest that the patient has consented").check()
    page.get_by_role("button", name="Submit the referral").click()

    expect(page.get_by_text(f"Referral {referral.number} was sent to the clinic.")).to_be_visible()
    expect(status_badge(page)).to_have_text("Submitted")
    expect(page.get_by_role("link", name="psychiatric-evaluation.pdf")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("Submitted by Provider Persona")
    referral.refresh_from_db()
    assert referral.status == "submitted"
    assert services.submission_problems(referral) == {}
    assert [trial.drug for trial in referral.prior_trials.all()] == ["sertraline", "venlafaxine XR"]
    assert referral.phq9_answers == [1, 2, 3, 1, 0, 2, 1, 1, 0]
    attachment = Attachment.objects.get(referral=referral)
    assert (attachment.original_name, attachment.content_type) == (
        "psychiatric-evaluation.pdf",
        "application/pdf",
    )
    assert csp.violations == []


def provider_sees(page: Page, base_url: str, referral: Referral, status: str) -> None:
    """The provider opens the referral and then the list, and both show ``status``.

    The list is where the provider waits: the referral page polls its conversation, and the
    embedded SQLite test database cannot take two sessions' requests at the same moment, so
    the coordinator acts only while the provider's page is quiet."""
    page.goto(f"{base_url}/referrals/{referral.public_id}/")
    expect(status_badge(page)).to_have_text(status)
    page.wait_for_load_state("networkidle")
    page.goto(f"{base_url}/referrals/")
    expect(list_row(page, referral).locator(".status")).to_have_text(status)


def test_coordinator_asks_provider_answers_coordinator_accepts_and_schedules(
    browser: Browser, live_server: Any, cast: Cast
) -> None:
    base_url = str(live_server)
    referral = services.referral_create(actor=cast.user("provider"), data=complete_referral_data())
    services.referral_submit(actor=cast.user("provider"), referral=referral)
    csp = CspWatch()
    _, coordinator = new_page(browser, csp)
    _, provider = new_page(browser, csp)
    sign_in(coordinator, base_url, cast, "coordinator")
    sign_in(provider, base_url, cast, "provider")
    provider_sees(provider, base_url, referral, "Submitted")

    # The coordinator picks it up from the worklist ...
    coordinator.get_by_role("link", name="Triage worklist").click()
    row = list_row(coordinator, referral)
    expect(row.locator(".status")).to_have_text("Submitted")
    row.get_by_role("button", name="Start review").click()
    expect(coordinator.get_by_text(f"You picked up referral {referral.number}")).to_be_visible()
    provider_sees(provider, base_url, referral, "In review")

    # ... and asks a question.
    row = list_row(coordinator, referral)
    row.get_by_text("Request information").click()
    row.get_by_label("Question for the referrer").fill(QUESTION)
    row.get_by_role("button", name="Send the question").click()
    expect(list_row(coordinator, referral).locator(".status")).to_have_text("Information requested")
    provider_sees(provider, base_url, referral, "Information requested")

    # The provider reads the question on the referral and answers it.
    list_row(provider, referral).get_by_role("link", name=referral.number).click()
    question = provider.get_by_role("region", name="The clinic asks")
    expect(question).to_contain_text(QUESTION)
    question.get_by_label("Your answer").fill(ANSWER)
    question.get_by_role("button", name="Send the answer").click()
    expect(status_badge(provider)).to_have_text("In review")
    expect(provider.locator(".timeline")).to_contain_text(ANSWER)
    provider.wait_for_load_state("networkidle")
    provider.goto(f"{base_url}/referrals/")

    # The coordinator accepts ...
    coordinator.reload()
    row = list_row(coordinator, referral)
    expect(row.locator(".status")).to_have_text("In review")
    row.get_by_role("button", name="Accept").click()
    expect(coordinator.get_by_text(f"Referral {referral.number} was accepted.")).to_be_visible()
    provider_sees(provider, base_url, referral, "Accepted")

    # ... and schedules the consult.
    consult = timezone.localtime() + datetime.timedelta(days=4)
    row = list_row(coordinator, referral)
    row.get_by_text("Schedule the consult").click()
    row.get_by_label("Consult date and time").fill(consult.strftime("%Y-%m-%dT10:30"))
    row.get_by_role("button", name="Save the consult time").click()
    scheduled = f"The consult for referral {referral.number} is scheduled."
    expect(coordinator.get_by_text(scheduled)).to_be_visible()
    provider_sees(provider, base_url, referral, "Scheduled")
    consult_text = f"{consult.day} {consult:%b %Y}, 10:30"
    expect(list_row(provider, referral)).to_contain_text(consult_text)
    provider.goto(f"{base_url}/referrals/{referral.public_id}/")
    expect(provider.locator(".sla")).to_contain_text(consult_text)
    provider.wait_for_load_state("networkidle")

    referral.refresh_from_db()
    assert referral.status == "scheduled"
    assert referral.consult_at is not None
    assert timezone.localtime(referral.consult_at).strftime("%Y-%m-%d %H:%M") == consult.strftime(
        "%Y-%m-%d 10:30"
    )
    assert list(referral.events.values_list("kind", flat=True)) == [
        "created",
        "submitted",
        "reviewed",
        "info_requested",
        "answered",
        "accepted",
        "scheduled",
    ]
    assert csp.violations == []
