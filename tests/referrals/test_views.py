"""The referral portal pages: the wizard, the list, the worklist, the detail page and its actions.

Pages are driven through Django's test client signed in as each persona (every persona has TOTP
enrolled, so the MFA gate lets them through). Each page gets an access matrix over the whole cast
(status code or redirect, nothing leaked, no side effect on denial); bad input shows form errors
and changes nothing; active suicidal intent brings up the crisis resources and marks the referral
urgent.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.audit.models import AuditEvent
from referrals import services
from referrals.models import Attachment, Patient, PriorTrial, Referral, ReferralEvent
from tests.personas import ALL_PERSONAS, Cast
from tests.referrals.factories import (
    CANARY_FAMILY_NAME,
    CANARY_GIVEN_NAME,
    PatientFactory,
    complete_referral_data,
    referral_in_state,
)
from tests.referrals.helpers import Snapshot

pytestmark = pytest.mark.django_db

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
LOGIN = "/accounts/login/"


def browser(cast: Cast, persona: str) -> Client:
    client = Client()
    user = cast[persona].user
    if user is not None:
        client.force_login(user)
    return client


def canary_referral(cast: Cast, status: str, **overrides: Any) -> Referral:
    """A complete referral of the cast's provider whose patient's names are canaries."""
    patient = PatientFactory.create(
        practice=cast.practice,
        given_name=CANARY_GIVEN_NAME,
        family_name=CANARY_FAMILY_NAME,
        created_by=cast.user("provider"),
    )
    return referral_in_state(cast, status, patient=patient, **overrides)


def text_upload(name: str = "evaluation.txt", text: str = "Psychiatric evaluation.\n") -> Any:
    return SimpleUploadedFile(name, text.encode(), content_type="text/plain")


def attach(cast: Cast, referral: Referral) -> Attachment:
    """An attachment uploaded by the provider (the referral must be editable at that moment)."""
    return services.attachment_upload(
        actor=cast.user("provider"), referral=referral, uploaded_file=text_upload()
    )


def html(response: Any) -> str:
    return str(response.content.decode())


def assert_no_inline_script_or_style(page: str) -> None:
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son[a-z]+=", page) == []
    assert re.findall(r"\sstyle=", page) == []
    assert "<style" not in page


def assert_nothing_leaked(response: Any, referral: Referral) -> None:
    body = response.content
    assert referral.number.encode() not in body
    assert str(referral.public_id).encode() not in body
    assert CANARY_GIVEN_NAME.encode() not in body
    assert CANARY_FAMILY_NAME.encode() not in body


def writes() -> int:
    """Allowed audit events other than reads: every change leaves one."""
    return AuditEvent.objects.filter(outcome="allowed").exclude(action__endswith=".read").count()


def assert_unchanged(before: Snapshot, writes_before: int) -> None:
    """Nothing was written. Showing the referral's page again with the errors is a PHI read,
    which is audited as one (and is not a change)."""
    after = Snapshot.take()
    assert replace(after, allowed_audit=before.allowed_audit) == before
    assert writes() == writes_before


def edit_url(referral: Referral, step: str) -> str:
    return f"/referrals/{referral.public_id}/edit/{step}/"


def action_url(referral: Referral, action: str) -> str:
    return f"/referrals/{referral.public_id}/actions/{action}/"


# Complete form posts for each step of the wizard (the values of ``complete_referral_data``).
PATIENT_POST = {
    "given_name": "Dana",
    "family_name": "Example",
    "birth_date": "1984-05-17",
    "sex": "female",
    "phone": "+1 407 555 0100",
    "email": "dana@example.org",
    "payer": "Florida Blue",
    "member_id": "XJH123456789",
    "group_number": "",
}


def history_post(trials: list[dict[str, str]], **overrides: str) -> dict[str, str]:
    data = {
        "reason": "Recurrent depression after two adequate trials.",
        "diagnosis_codes": "F33.2",
        "episode_months": "14",
        "current_medications": "bupropion XL 300 mg daily",
        "allergies": "none known",
        "office_bp_systolic": "128",
        "office_bp_diastolic": "82",
        "office_heart_rate": "76",
        "trials-TOTAL_FORMS": str(len(trials)),
        "trials-INITIAL_FORMS": "0",
        "trials-MIN_NUM_FORMS": "0",
        "trials-MAX_NUM_FORMS": "20",
    }
    for index, trial in enumerate(trials):
        for key, value in trial.items():
            data[f"trials-{index}-{key}"] = value
    data.update(overrides)
    return data


TRIAL_1 = {
    "drug": "sertraline",
    "max_daily_dose_mg": "200",
    "weeks_at_dose": "8",
    "adherence": "good",
    "outcome": "no_response",
}
TRIAL_2 = {
    "drug": "venlafaxine XR",
    "max_daily_dose_mg": "225",
    "weeks_at_dose": "6",
    "adherence": "good",
    "outcome": "partial_response",
}


def screening_post(
    answers: list[int] | None = None, suicidal_intent: str = "no", **overrides: str
) -> dict[str, str]:
    data = {
        f"phq9_{index}": str(value)
        for index, value in enumerate(answers or [3, 3, 2, 3, 2, 2, 2, 1, 0])
    }
    for key in (
        "psychosis",
        "substance_use_disorder",
        "uncontrolled_hypertension",
        "vascular_aneurysm_or_avm",
        "pregnancy",
        "ketamine_hypersensitivity",
    ):
        data[f"contraindication_{key}"] = "no"
    data["suicidal_intent"] = suicidal_intent
    data.update(overrides)
    return data


# --- the wizard, end to end ------------------------------------------------------------------


def test_a_provider_completes_the_wizard_and_submits(cast: Cast) -> None:
    client = browser(cast, "provider")

    created = client.post("/referrals/new/", {**PATIENT_POST, "go": "next"})

    referral = Referral.objects.get()
    assert created.status_code == 302
    assert created["Location"] == edit_url(referral, "history")
    assert referral.status == "draft"
    assert referral.provider == cast.user("provider")
    assert referral.patient.given_name == "Dana"
    assert referral.insurance == {"payer": "Florida Blue", "member_id": "XJH123456789"}

    saved = client.post(edit_url(referral, "history"), history_post([TRIAL_1, TRIAL_2], go="next"))
    assert saved.status_code == 302
    assert saved["Location"] == edit_url(referral, "screening")
    referral.refresh_from_db()
    assert referral.diagnosis_codes == ["F33.2"]
    assert referral.episode_months == 14
    assert [t.drug for t in referral.prior_trials.all()] == ["sertraline", "venlafaxine XR"]

    screened = client.post(edit_url(referral, "screening"), {**screening_post(), "go": "next"})
    assert screened["Location"] == edit_url(referral, "attachments")
    referral.refresh_from_db()
    assert referral.phq9_answers == [3, 3, 2, 3, 2, 2, 2, 1, 0]
    assert referral.suicidal_intent is False
    assert referral.urgent is False

    uploaded = client.post(edit_url(referral, "attachments"), {"file": text_upload()})
    assert uploaded["Location"] == edit_url(referral, "attachments")
    attachment = Attachment.objects.get(referral=referral)
    assert attachment.original_name == "evaluation.txt"

    review = client.get(edit_url(referral, "review"))
    assert review.status_code == 200
    assert "Consent: The patient&#x27;s consent" in html(review)
    assert (
        html(review).count('href="' + edit_url(referral, "review") + '#id_consent_attested"') == 1
    )

    submitted = client.post(
        edit_url(referral, "review"), {"consent_attested": "on", "intent": "submit"}
    )

    assert submitted.status_code == 302
    assert submitted["Location"] == f"/referrals/{referral.public_id}/"
    referral.refresh_from_db()
    assert referral.status == "submitted"
    assert referral.consent_attested is True
    assert services.submission_problems(referral) == {}
    detail = client.get(submitted["Location"])
    page = html(detail)
    assert f"Referral {referral.number} was sent to the clinic." in page
    assert '<span class="status status-submitted">Submitted</span>' in page
    assert "evaluation.txt" in page
    assert_no_inline_script_or_style(page)


# --- access matrix: reading pages ------------------------------------------------------------

OK, FOUND, FORBIDDEN, NOT_FOUND = 200, 302, 403, 404
PRACTICE = ("provider", "colleague", "staff")
CLINIC = ("coordinator", "clinician", "admin")
STEPS = ("patient", "history", "screening", "attachments", "review")


def _expected_reads(persona: str) -> dict[str, int]:
    """What each page answers to ``persona`` (a signed-in one)."""
    practice = persona in PRACTICE
    clinic = persona in CLINIC
    editor = persona in {"provider", "staff"}
    draft_step = OK if editor else FORBIDDEN if persona == "colleague" else NOT_FOUND
    submitted_step = (
        FOUND if editor else FORBIDDEN if persona == "colleague" or clinic else NOT_FOUND
    )
    expected = {
        "list": OK,
        "new": OK if not clinic else FORBIDDEN,
        "worklist": OK if clinic else FORBIDDEN,
        "draft detail": OK if practice else NOT_FOUND,
        "draft resume": FOUND if editor else draft_step,
        "draft download": OK if practice else NOT_FOUND,
        "submitted detail": OK if practice or clinic else NOT_FOUND,
        "submitted download": OK if practice or clinic else NOT_FOUND,
        "submitted step": submitted_step,
    }
    for step in STEPS:
        expected[f"draft {step}"] = draft_step
    return expected


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_reading_pages_over_the_cast(cast: Cast, persona: str) -> None:
    draft = canary_referral(cast, "draft")
    draft_attachment = attach(cast, draft)
    submitted = canary_referral(cast, "draft")
    submitted_attachment = attach(cast, submitted)
    Referral.objects.filter(pk=submitted.pk).update(
        status="submitted", submitted_at=timezone.now(), provider_signed_off_at=timezone.now()
    )
    client = browser(cast, persona)
    before = Snapshot.take()

    urls = {
        "list": "/referrals/",
        "new": "/referrals/new/",
        "worklist": "/referrals/worklist/",
        "draft detail": f"/referrals/{draft.public_id}/",
        "draft resume": f"/referrals/{draft.public_id}/edit/",
        "draft download": f"/referrals/attachments/{draft_attachment.public_id}/download/",
        "submitted detail": f"/referrals/{submitted.public_id}/",
        "submitted download": f"/referrals/attachments/{submitted_attachment.public_id}/download/",
        "submitted step": edit_url(submitted, "patient"),
        **{f"draft {step}": edit_url(draft, step) for step in STEPS},
    }
    responses = {name: client.get(url) for name, url in urls.items()}

    statuses = {name: response.status_code for name, response in responses.items()}
    if persona == "anonymous":
        assert set(statuses.values()) == {FOUND}
        assert all(r["Location"].startswith(LOGIN) for r in responses.values())
    else:
        assert statuses == _expected_reads(persona)
    for name, response in responses.items():
        if response.status_code in {FORBIDDEN, NOT_FOUND} or persona in {"anonymous", "outsider"}:
            assert_nothing_leaked(response, draft)
            assert_nothing_leaked(response, submitted)
        if response.status_code == OK and "download" not in name:
            assert_no_inline_script_or_style(html(response))
    if persona in {"provider", "staff"}:
        assert responses["submitted step"]["Location"] == f"/referrals/{submitted.public_id}/"
    if persona in {"anonymous", "outsider"}:
        # Not even an allowed read was recorded: nothing was shown.
        assert Snapshot.take() == before


def test_the_list_shows_the_clinic_only_submitted_referrals(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    submitted = canary_referral(cast, "submitted")

    page = html(browser(cast, "coordinator").get("/referrals/"))

    assert submitted.number in page
    assert draft.number not in page
    assert CANARY_GIVEN_NAME not in page


def test_downloads_are_attachments_with_the_original_bytes(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    attachment = attach(cast, draft)

    response = browser(cast, "staff").get(
        f"/referrals/attachments/{attachment.public_id}/download/"
    )

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert b"".join(response.streaming_content) == b"Psychiatric evaluation.\n"
    assert response["Content-Disposition"] == 'attachment; filename="evaluation.txt"'
    assert response["Content-Type"] == "text/plain"
    assert "no-store" in response["Cache-Control"]


# --- access matrix: writing pages ------------------------------------------------------------


WIZARD_POSTS: dict[str, Callable[[], dict[str, Any]]] = {
    "patient": lambda: {**PATIENT_POST, "given_name": "Changed", "go": "next"},
    "history": lambda: history_post([TRIAL_1], go="next", reason="Changed."),
    "screening": lambda: {**screening_post([1, 1, 1, 1, 1, 1, 1, 1, 0]), "go": "next"},
    "attachments": lambda: {"file": text_upload()},
    "review": lambda: {"consent_attested": "", "intent": "save"},
}


@pytest.mark.parametrize("persona", ALL_PERSONAS)
@pytest.mark.parametrize("step", STEPS)
def test_saving_a_wizard_step_over_the_cast(cast: Cast, persona: str, step: str) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, persona)
    before = Snapshot.take()

    body = WIZARD_POSTS[step]()
    if step == "patient" and persona == "staff":
        # Staff enter referrals on a provider's behalf: the page asks whose.
        body["provider"] = str(cast.user("provider").public_id)

    response = client.post(edit_url(draft, step), body)

    expected = {
        "provider": FOUND, "staff": FOUND, "colleague": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
    }  # fmt: skip
    if persona == "anonymous":
        assert response.status_code == FOUND
        assert response["Location"].startswith(LOGIN)
    else:
        assert response.status_code == expected[persona]
    if response.status_code == FOUND and persona != "anonymous":
        assert Snapshot.take() != before
        assert ReferralEvent.objects.filter(referral=draft, actor=cast.user(persona)).exists()
    else:
        assert Snapshot.take() == before
        assert_nothing_leaked(response, draft)


def test_starting_a_referral_is_for_practices_only(cast: Cast) -> None:
    for persona in CLINIC:
        response = browser(cast, persona).post("/referrals/new/", {**PATIENT_POST, "go": "next"})
        assert response.status_code == FORBIDDEN
    anonymous = Client().post("/referrals/new/", {**PATIENT_POST, "go": "next"})
    assert anonymous.status_code == FOUND
    assert Referral.objects.count() == 0
    assert Patient.objects.count() == 0


# Who may take which action from the page, on a referral in the state it needs.
ACTION_CASES: list[tuple[str, str, dict[str, str], dict[str, int]]] = [
    ("request-info", "in_review", {"request-info-question": "Latest evaluation?"}, {
        "provider": FORBIDDEN, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": FOUND, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
    ("submit", "info_requested", {"submit-answer": "Attached today."}, {
        "provider": FOUND, "colleague": FORBIDDEN, "staff": FOUND, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
    ("start-treatment", "scheduled", {}, {
        "provider": FORBIDDEN, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FOUND, "admin": FORBIDDEN,
    }),
    ("cancel", "submitted", {"cancel-reason": "Moved away."}, {
        "provider": FOUND, "colleague": FORBIDDEN, "staff": FOUND, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
    ("sign-off", "draft", {}, {
        "provider": FOUND, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
    }),
]  # fmt: skip


@pytest.mark.parametrize("persona", ALL_PERSONAS)
@pytest.mark.parametrize(("action", "status", "body", "expected"), ACTION_CASES)
def test_actions_over_the_cast(
    cast: Cast,
    persona: str,
    action: str,
    status: str,
    body: dict[str, str],
    expected: dict[str, int],
) -> None:
    overrides: dict[str, Any] = {}
    if action == "sign-off":
        # Entered by staff, so it waits for the provider's sign-off.
        overrides = {"created_by": cast.user("staff"), "provider_signed_off_at": None}
    referral = canary_referral(cast, status, **overrides)
    client = browser(cast, persona)
    before = Snapshot.take()

    response = client.post(action_url(referral, action), body)

    if persona == "anonymous":
        assert response.status_code == FOUND
        assert response["Location"].startswith(LOGIN)
    else:
        assert response.status_code == expected[persona]
    if response.status_code == FOUND and persona != "anonymous":
        assert response["Location"] == f"/referrals/{referral.public_id}/"
        assert Snapshot.take() != before
    else:
        assert Snapshot.take() == before
        if response.status_code != FORBIDDEN:
            assert_nothing_leaked(response, referral)
        else:
            assert CANARY_GIVEN_NAME not in html(response)
            assert "You may not take this action on this referral." in html(response)


def test_actions_refuse_get_and_unknown_names(cast: Cast) -> None:
    referral = canary_referral(cast, "in_review")
    client = browser(cast, "coordinator")

    assert client.get(action_url(referral, "accept")).status_code == 405
    assert client.post(action_url(referral, "approve")).status_code == 404
    assert browser(cast, "provider").get(edit_url(referral, "finances")).status_code == 404
    referral.refresh_from_db()
    assert referral.status == "in_review"


# --- bad input: form errors, nothing changed -------------------------------------------------


def test_a_new_referral_with_bad_input_shows_errors_and_creates_nothing(cast: Cast) -> None:
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()

    response = browser(cast, "provider").post(
        "/referrals/new/",
        {**PATIENT_POST, "birth_date": tomorrow, "phone": "call me", "email": "not-an-email"},
    )

    assert response.status_code == 400
    page = html(response)
    assert 'id="error-summary" role="alert"' in page
    assert (
        '<a href="#id_birth_date">Date of birth: Enter a date between 1 January 1900 and today.</a>'
        in page
    )
    assert 'href="#id_phone"' in page
    assert 'href="#id_email"' in page
    assert 'aria-invalid="true"' in page
    assert Referral.objects.count() == 0
    assert Patient.objects.count() == 0


def test_staff_must_name_the_provider(cast: Cast) -> None:
    response = browser(cast, "staff").post("/referrals/new/", {**PATIENT_POST, "go": "next"})

    assert response.status_code == 400
    assert '<a href="#id_provider">Referring provider: This field is required.</a>' in html(
        response
    )
    assert Referral.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "anchor", "message"),
    [
        ({"diagnosis_codes": "F41.1"}, "id_diagnosis_codes", "F41.1 is not an ICD-10 depressive"),
        ({"office_bp_systolic": "400"}, "id_office_bp_systolic", "less than or equal to 300"),
        ({"episode_months": "many"}, "id_episode_months", "Enter a whole number."),
        (
            {"trials-0-weeks_at_dose": "-2"},
            "id_trials-0-weeks_at_dose",
            "greater than or equal to 0",
        ),
        ({"trials-0-adherence": "excellent"}, "id_trials-0-adherence", "Select a valid choice."),
    ],
)
def test_the_history_step_refuses_bad_input_and_changes_nothing(
    cast: Cast, overrides: dict[str, str], anchor: str, message: str
) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()
    trials_before = list(PriorTrial.objects.values_list("drug", "weeks_at_dose", "adherence"))

    response = client.post(
        edit_url(draft, "history"), history_post([TRIAL_1], go="next", **overrides)
    )

    assert response.status_code == 400
    page = html(response)
    assert re.search(rf'<a href="#{anchor}">[^<]*{re.escape(message)}', page)
    assert_unchanged(before, writes_before)
    assert list(PriorTrial.objects.values_list("drug", "weeks_at_dose", "adherence")) == (
        trials_before
    )


def test_the_screening_step_needs_the_suicidality_answer(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()
    data = screening_post([0, 0, 0, 0, 0, 0, 0, 0, 0])
    del data["suicidal_intent"]

    response = client.post(edit_url(draft, "screening"), data)

    assert response.status_code == 400
    assert (
        '<a href="#id_suicidal_intent">Does the patient have active suicidal intent (a plan or '
        "intent to act now)?: Answer whether the patient has active suicidal intent.</a>"
    ) in html(response)
    assert_unchanged(before, writes_before)


def test_an_out_of_range_phq9_answer_is_refused(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(edit_url(draft, "screening"), screening_post(phq9_8="4"))

    assert response.status_code == 400
    assert 'href="#id_phq9_8"' in html(response)
    assert_unchanged(before, writes_before)


@pytest.mark.parametrize(
    ("upload", "status", "message"),
    [
        (
            SimpleUploadedFile("letter.pdf", b"<html><script>x</script></html>", "application/pdf"),
            415,
            "The file contains web content (HTML, SVG or script), which is not accepted.",
        ),
        (
            SimpleUploadedFile("scan.png", b"\x00\x01\x02 binary junk \xff\xfe", "image/png"),
            415,
            "Only PDF, PNG, JPEG and plain-text (UTF-8) files can be uploaded.",
        ),
        (
            SimpleUploadedFile("empty.txt", b"", "text/plain"),
            400,
            "The submitted file is empty.",
        ),
    ],
)
def test_refused_uploads_say_why_and_store_nothing(
    cast: Cast, upload: Any, status: int, message: str
) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(edit_url(draft, "attachments"), {"file": upload})

    assert response.status_code == status
    assert f'<a href="#id_file">Add a record: {message}</a>' in html(response)
    assert_unchanged(before, writes_before)


def test_an_oversized_upload_is_refused_with_413(cast: Cast, settings: Any) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 1024
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(edit_url(draft, "attachments"), {"file": text_upload(text="a" * 2048)})

    assert response.status_code == 413
    assert "The file is larger than the" in html(response)
    assert_unchanged(before, writes_before)


@pytest.mark.parametrize(
    ("action", "status", "body", "code", "message"),
    [
        ("request-info", "in_review", {"request-info-question": "  "}, 400, "Write the question"),
        ("decline", "submitted", {"decline-advice": "Try TMS."}, 400, "Give the reason"),
        ("schedule", "accepted", {"schedule-consult_at": "next week"}, 400, "Enter a date"),
        (
            "schedule",
            "accepted",
            {"schedule-consult_at": "2020-01-06T10:00"},
            400,
            "The consult must be in the future.",
        ),
        (
            "accept",
            "submitted",
            {},
            409,
            "A referral that is submitted cannot be given the action &#x27;accept&#x27;.",
        ),
        (
            "request-info",
            "accepted",
            {"request-info-question": "One more thing?"},
            409,
            "A referral that is accepted cannot be given the action &#x27;request-info&#x27;.",
        ),
    ],
)
def test_refused_actions_show_why_and_change_nothing(
    cast: Cast, action: str, status: str, body: dict[str, str], code: int, message: str
) -> None:
    referral = canary_referral(cast, status)
    client = browser(cast, "coordinator")
    before, writes_before = Snapshot.take(), writes()
    events = ReferralEvent.objects.count()

    response = client.post(action_url(referral, action), body)

    assert response.status_code == code
    page = html(response)
    assert "The action was not taken" in page
    assert message in page
    referral.refresh_from_db()
    assert referral.status == status
    assert ReferralEvent.objects.count() == events
    assert_unchanged(before, writes_before)


def test_a_valid_consult_time_is_read_in_the_clinic_time_zone(cast: Cast) -> None:
    referral = canary_referral(cast, "accepted")
    local = timezone.localtime() + datetime.timedelta(days=3)

    response = browser(cast, "coordinator").post(
        action_url(referral, "schedule"), {"schedule-consult_at": local.strftime("%Y-%m-%dT14:30")}
    )

    assert response.status_code == 302
    referral.refresh_from_db()
    assert referral.status == "scheduled"
    assert referral.consult_at is not None
    consult = timezone.localtime(referral.consult_at)
    assert (consult.date(), consult.hour, consult.minute) == (local.date(), 14, 30)


def test_submitting_an_incomplete_referral_lists_what_is_missing_per_step(cast: Cast) -> None:
    client = browser(cast, "provider")
    client.post("/referrals/new/", {**PATIENT_POST, "phone": "", "go": "next"})
    referral = Referral.objects.get()
    before = Snapshot.take()

    response = client.post(edit_url(referral, "review"), {"intent": "submit"})

    assert response.status_code == 400
    page = html(response)
    assert 'class="problems" id="problems"' in page
    assert 'role="alert"' in page
    problems = page.split('id="problems"')[1].split("</section>")[0]
    links = re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', problems)
    targets = {label.split(":")[0]: href for href, label in links}
    assert targets["Patient"] == edit_url(referral, "patient") + "#id_phone"
    assert targets["Reason for referral"] == edit_url(referral, "history") + "#id_reason"
    assert targets["Prior antidepressant trials"] == edit_url(referral, "history") + "#trials"
    assert targets["PHQ-9 item 1"] == edit_url(referral, "screening") + "#id_phq9_0"
    assert targets["Consent"] == edit_url(referral, "review") + "#id_consent_attested"
    # In the order of the steps.
    steps = [href.split("/edit/")[1].split("/")[0] for href, _ in links]
    assert steps == sorted(steps, key=STEPS.index)
    referral.refresh_from_db()
    assert referral.status == "draft"
    assert Snapshot.take().referrals == before.referrals


def test_resume_goes_to_the_first_incomplete_step(cast: Cast) -> None:
    client = browser(cast, "provider")
    client.post("/referrals/new/", {**PATIENT_POST, "go": "next"})
    referral = Referral.objects.get()

    first = client.get(f"/referrals/{referral.public_id}/edit/")
    client.post(edit_url(referral, "history"), history_post([TRIAL_1], go="next"))
    second = client.get(f"/referrals/{referral.public_id}/edit/")

    assert first["Location"] == edit_url(referral, "history")
    assert second["Location"] == edit_url(referral, "screening")


# --- the crisis resources --------------------------------------------------------------------


def test_active_suicidal_intent_shows_crisis_resources_and_marks_urgent(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")

    saved = client.post(
        edit_url(draft, "screening"), {**screening_post(suicidal_intent="yes"), "go": "next"}
    )

    # Not on to the next step: the crisis resources come first.
    assert saved.status_code == 302
    assert saved["Location"] == edit_url(draft, "screening") + "#crisis-resources"
    draft.refresh_from_db()
    assert draft.suicidal_intent is True
    assert draft.urgent is True
    page = html(client.get(saved["Location"]))
    assert 'id="crisis-resources" role="alert"' in page
    assert '<a href="tel:988">988</a>' in page
    assert '<a href="tel:911">911</a>' in page
    assert "emergency department" in page
    assert "This referral is marked urgent. Submit it now" in page
    # Every page of the referral keeps showing them.
    for url in (f"/referrals/{draft.public_id}/", edit_url(draft, "review")):
        assert 'id="crisis-resources"' in html(client.get(url))


def test_no_crisis_notice_without_suicidal_intent(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")

    client.post(edit_url(draft, "screening"), {**screening_post(), "go": "next"})

    draft.refresh_from_db()
    assert (draft.suicidal_intent, draft.urgent) == (False, False)
    for url in (edit_url(draft, "screening"), f"/referrals/{draft.public_id}/"):
        assert 'id="crisis-resources"' not in html(client.get(url))


def test_submitting_with_suicidal_intent_alerts_the_clinic_at_once(cast: Cast) -> None:
    client = browser(cast, "provider")
    referral = services.referral_create(
        actor=cast.user("provider"), data=complete_referral_data(suicidal_intent=True)
    )

    client.post(edit_url(referral, "review"), {"consent_attested": "on", "intent": "submit"})

    referral.refresh_from_db()
    assert referral.status == "submitted"
    assert referral.urgent is True
    assert list(referral.events.values_list("kind", flat=True)) == [
        "created",
        "submitted",
        "urgent_alert",
    ]
    coordinator_page = html(browser(cast, "coordinator").get(f"/referrals/{referral.public_id}/"))
    assert 'id="crisis-resources"' in coordinator_page
    assert '<span class="badge urgent">Urgent</span>' in coordinator_page


# --- "is this the same patient?" -------------------------------------------------------------


def _existing_patient(cast: Cast) -> Referral:
    return services.referral_create(actor=cast.user("colleague"), data=complete_referral_data())


def test_a_known_patient_is_asked_about_before_anything_is_created(cast: Cast) -> None:
    existing = _existing_patient(cast)
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(
        "/referrals/new/", {**PATIENT_POST, "given_name": " dana ", "family_name": "EXAMPLE"}
    )

    assert response.status_code == 200
    page = html(response)
    assert "Is this the same patient?" in page
    assert f'value="{existing.patient.public_id}"' in page
    assert existing.number in page
    assert 'value="new"' in page
    assert_unchanged(before, writes_before)


def test_confirming_the_same_patient_reuses_the_record(cast: Cast) -> None:
    existing = _existing_patient(cast)

    response = browser(cast, "provider").post(
        "/referrals/new/",
        {**PATIENT_POST, "same_patient": str(existing.patient.public_id), "go": "next"},
    )

    assert response.status_code == 302
    created = Referral.objects.exclude(pk=existing.pk).get()
    assert created.patient_id == existing.patient_id
    assert Patient.objects.count() == 1


def test_a_different_patient_gets_a_new_record(cast: Cast) -> None:
    existing = _existing_patient(cast)

    response = browser(cast, "provider").post(
        "/referrals/new/", {**PATIENT_POST, "same_patient": "new", "go": "next"}
    )

    assert response.status_code == 302
    created = Referral.objects.exclude(pk=existing.pk).get()
    assert created.patient_id != existing.patient_id
    assert Patient.objects.count() == 2


def test_a_forged_patient_choice_is_refused(cast: Cast) -> None:
    _existing_patient(cast)
    other_practice_patient = PatientFactory.create(practice=cast.other_practice)
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(
        "/referrals/new/",
        {**PATIENT_POST, "same_patient": str(other_practice_patient.public_id), "go": "next"},
    )

    assert response.status_code == 400
    summary = '<a href="#id_same_patient">Is this the same patient?: Select a valid choice.'
    assert summary in html(response)
    assert_unchanged(before, writes_before)


def test_other_practices_patients_are_never_offered(cast: Cast) -> None:
    services.referral_create(actor=cast.user("outsider"), data=complete_referral_data())

    response = browser(cast, "provider").post("/referrals/new/", {**PATIENT_POST, "go": "next"})

    assert response.status_code == 302
    assert Patient.objects.count() == 2


# --- prior trials: add and remove rows -------------------------------------------------------


def test_adding_and_removing_trial_rows(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")

    added = client.post(edit_url(draft, "history"), history_post([TRIAL_1], add_trial="1"))

    assert added.status_code == 302
    assert added["Location"] == edit_url(draft, "history") + "?add=1"
    page = html(client.get(added["Location"]))
    assert 'id="trial-2"' in page
    assert re.search(r'name="trials-1-drug"[^>]*autofocus', page)
    assert [t.drug for t in draft.prior_trials.all()] == ["sertraline"]

    client.post(edit_url(draft, "history"), history_post([TRIAL_1, TRIAL_2, {}], go="stay"))
    assert [t.drug for t in draft.prior_trials.all()] == ["sertraline", "venlafaxine XR"]

    removed = client.post(
        edit_url(draft, "history"), history_post([TRIAL_1, TRIAL_2], remove_trial="0")
    )

    assert removed["Location"] == edit_url(draft, "history") + "#trials"
    assert [t.drug for t in draft.prior_trials.all()] == ["venlafaxine XR"]
    page = html(client.get(removed["Location"]))
    assert "The trial was removed and the draft saved." in page
    assert 'id="trial-1"' in page
    assert 'id="trial-2"' not in page


def test_removing_an_invalid_row_still_saves(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")

    response = browser(cast, "provider").post(
        edit_url(draft, "history"),
        history_post([TRIAL_1, {"weeks_at_dose": "-5"}], remove_trial="1"),
    )

    assert response.status_code == 302
    assert [t.drug for t in draft.prior_trials.all()] == ["sertraline"]


# --- practice staff enter referrals on a provider's behalf -----------------------------------


def test_staff_enter_the_provider_signs_off_and_staff_submit(cast: Cast) -> None:
    staff = browser(cast, "staff")
    provider = browser(cast, "provider")
    provider_id = str(cast.user("provider").public_id)
    staff.post("/referrals/new/", {**PATIENT_POST, "provider": provider_id, "go": "next"})
    referral = Referral.objects.get()
    services.referral_update(
        actor=cast.user("staff"),
        referral=referral,
        data={key: value for key, value in complete_referral_data().items() if key != "patient"},
    )
    assert referral.provider == cast.user("provider")
    assert referral.created_by == cast.user("staff")

    waiting = html(staff.get(edit_url(referral, "review")))
    assert "The referring provider must sign this referral off before you can submit it." in waiting
    assert 'value="submit"' not in waiting

    provider_review = html(provider.get(edit_url(referral, "review")))
    assert 'value="sign-off"' in provider_review
    signed = provider.post(
        edit_url(referral, "review"), {"consent_attested": "on", "intent": "sign-off"}
    )
    assert signed["Location"] == f"/referrals/{referral.public_id}/"

    submitted = staff.post(
        edit_url(referral, "review"), {"consent_attested": "on", "intent": "submit"}
    )

    assert submitted.status_code == 302
    referral.refresh_from_db()
    assert referral.status == "submitted"
    assert list(referral.events.values_list("kind", "actor__email")) == [
        ("created", "staff@cast.example"),
        ("updated", "staff@cast.example"),
        ("signed_off", "provider@cast.example"),
        ("submitted", "staff@cast.example"),
    ]


# --- the list --------------------------------------------------------------------------------


def test_the_list_filters_by_status_urgency_overdue_and_number(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    urgent = canary_referral(cast, "in_review", urgent=True)
    overdue = canary_referral(
        cast, "submitted", triage_due_at=timezone.now() - datetime.timedelta(hours=1)
    )
    client = browser(cast, "provider")

    def numbers(query: str) -> list[str]:
        return re.findall(
            r'<a href="/referrals/[0-9a-f-]+/">(R-\d{4}-\d{5})</a>',
            html(client.get(f"/referrals/{query}")),
        )

    assert numbers("") == [overdue.number, urgent.number, draft.number]
    assert numbers("?status=draft") == [draft.number]
    assert numbers("?urgent=on") == [urgent.number]
    assert numbers("?overdue=on") == [overdue.number]
    assert numbers(f"?q={urgent.number[-5:]}") == [urgent.number]
    page = html(client.get("/referrals/"))
    assert '<span class="badge overdue">Overdue</span>' in page
    assert re.search(r'\?status=draft"[^>]*>Draft <span class="count">1</span>', page)


def test_an_unknown_status_filter_is_a_400(cast: Cast) -> None:
    canary_referral(cast, "draft")

    response = browser(cast, "provider").get("/referrals/?status=approved")

    assert response.status_code == 400
    assert 'href="#id_status"' in html(response)


# --- the worklist ----------------------------------------------------------------------------


def test_the_worklist_is_sorted_by_urgency_then_due_time(cast: Cast) -> None:
    now = timezone.now()
    later = canary_referral(cast, "submitted", triage_due_at=now + datetime.timedelta(days=2))
    sooner = canary_referral(cast, "in_review", triage_due_at=now + datetime.timedelta(hours=3))
    urgent = canary_referral(
        cast, "submitted", urgent=True, triage_due_at=now + datetime.timedelta(days=3)
    )
    canary_referral(cast, "draft")
    canary_referral(cast, "closed")

    page = html(browser(cast, "coordinator").get("/referrals/worklist/"))

    rows = re.findall(r'<tr data-referral="([0-9a-f-]+)">', page)
    assert rows == [str(urgent.public_id), str(sooner.public_id), str(later.public_id)]
    assert_no_inline_script_or_style(page)


def test_worklist_actions_offer_what_the_role_may_do(cast: Cast) -> None:
    submitted = canary_referral(cast, "submitted")
    scheduled = canary_referral(cast, "scheduled")

    coordinator = html(browser(cast, "coordinator").get("/referrals/worklist/"))
    clinician = html(browser(cast, "clinician").get("/referrals/worklist/"))

    def actions(page: str, referral: Referral) -> list[str]:
        row = page.split(f'<tr data-referral="{referral.public_id}">')[1].split("</tr>")[0]
        return re.findall(r'/actions/([a-z-]+)/"', row)

    assert actions(coordinator, submitted) == ["review", "request-info", "decline"]
    assert actions(coordinator, scheduled) == ["schedule", "no-show"]
    assert actions(clinician, submitted) == []
    assert actions(clinician, scheduled) == ["start-treatment"]


def test_acting_from_the_worklist_returns_to_it(cast: Cast) -> None:
    referral = canary_referral(cast, "in_review")
    client = browser(cast, "coordinator")

    response = client.post(
        action_url(referral, "request-info"),
        {"request-info-question": "Latest evaluation, please.", "return_to": "worklist"},
    )

    assert response["Location"] == "/referrals/worklist/"
    referral.refresh_from_db()
    assert referral.status == "info_requested"
    assert referral.events.get(kind="info_requested").note == "Latest evaluation, please."
    page = html(client.get("/referrals/worklist/"))
    assert f"Your question on referral {referral.number} was sent to the referrer." in page


def test_a_refused_worklist_action_shows_the_error_in_its_row(cast: Cast) -> None:
    referral = canary_referral(cast, "in_review")
    client = browser(cast, "coordinator")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(
        action_url(referral, "decline"), {"decline-reason": "", "return_to": "worklist"}
    )

    assert response.status_code == 400
    row = html(response).split(f'<tr data-referral="{referral.public_id}">')[1].split("</tr>")[0]
    assert "Give the reason for declining." in row
    assert "<details open>" in row
    assert_unchanged(before, writes_before)


def test_the_worklist_query_count_does_not_grow_with_rows(cast: Cast) -> None:
    client = browser(cast, "coordinator")
    canary_referral(cast, "submitted")
    client.get("/referrals/worklist/")  # warm up the session and caches
    with CaptureQueriesContext(connection) as few:
        client.get("/referrals/worklist/")
    for status in ("in_review", "accepted", "scheduled", "submitted", "in_review"):
        canary_referral(cast, status)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/referrals/worklist/")

    assert response.status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_list_query_count_does_not_grow_with_rows(cast: Cast) -> None:
    client = browser(cast, "provider")
    canary_referral(cast, "submitted")
    client.get("/referrals/")
    with CaptureQueriesContext(connection) as few:
        client.get("/referrals/")
    for status in ("draft", "accepted", "scheduled", "closed", "declined"):
        canary_referral(cast, status)
    with CaptureQueriesContext(connection) as many:
        client.get("/referrals/")

    assert len(many.captured_queries) == len(few.captured_queries)


# --- the detail page -------------------------------------------------------------------------


def test_the_detail_page_shows_timeline_sla_screening_and_the_conversation(cast: Cast) -> None:
    referral = services.referral_create(actor=cast.user("provider"), data=complete_referral_data())
    attach(cast, referral)
    services.referral_submit(actor=cast.user("provider"), referral=referral)
    services.referral_request_info(
        actor=cast.user("coordinator"), referral=referral, question="Dose of venlafaxine?"
    )
    referral.refresh_from_db()

    page = html(browser(cast, "provider").get(f"/referrals/{referral.public_id}/"))

    assert '<span class="status status-info_requested">Information requested</span>' in page
    assert "The clinic asks" in page
    assert "Dose of venlafaxine?" in page
    assert 'name="submit-answer"' in page
    timeline = page.split('<ol class="timeline">')[1].split("</ol>")[0]
    assert re.findall(r"<strong>([^<]+)</strong>", timeline) == [
        "Created",
        "Attachment added",
        "Submitted",
        "Information requested",
    ]
    assert "(2 business days after submission)" in page
    assert "2: meets the treatment-resistant depression count" in page
    assert "18 of 27, moderately severe" in page
    assert 'id="messages"' in page  # the referral's conversation (messaging's include)
    assert "evaluation.txt" in page
    assert_no_inline_script_or_style(page)


def test_the_referrer_answers_from_the_detail_page(cast: Cast) -> None:
    referral = canary_referral(cast, "in_review")
    services.referral_request_info(
        actor=cast.user("coordinator"), referral=referral, question="Latest evaluation?"
    )
    client = browser(cast, "provider")

    empty = client.post(action_url(referral, "submit"), {"submit-answer": ""})
    assert empty.status_code == 400
    assert "Write your answer to the clinic&#x27;s question." in html(empty)

    answered = client.post(action_url(referral, "submit"), {"submit-answer": "Attached today."})

    assert answered.status_code == 302
    referral.refresh_from_db()
    assert referral.status == "in_review"
    assert referral.events.get(kind="answered").note == "Attached today."


def test_the_navigation_offers_the_worklist_to_the_clinic_only(cast: Cast) -> None:
    practice = html(browser(cast, "staff").get("/"))
    clinic = html(browser(cast, "clinician").get("/"))

    assert '<a href="/referrals/">Referrals</a>' in practice
    assert "/referrals/worklist/" not in practice
    assert '<a href="/referrals/">Referrals</a>' in clinic
    assert '<a href="/referrals/worklist/">Triage worklist</a>' in clinic


def test_the_practice_is_asked_about_a_possible_duplicate_on_the_detail_page(cast: Cast) -> None:
    first = services.referral_create(actor=cast.user("provider"), data=complete_referral_data())
    second = services.referral_create(actor=cast.user("colleague"), data=complete_referral_data())
    services.referral_submit(actor=cast.user("provider"), referral=first)

    practice = html(browser(cast, "staff").get(f"/referrals/{first.public_id}/"))
    clinic = html(browser(cast, "coordinator").get(f"/referrals/{first.public_id}/"))

    assert "Is this the same patient?" in practice
    assert f'<a href="/referrals/{second.public_id}/">{second.number}</a>' in practice
    assert "Is this the same patient?" not in clinic
    assert second.number not in clinic


def test_a_tampered_trial_block_is_a_400_not_an_error(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()
    data = history_post([TRIAL_1], go="next")
    del data["trials-TOTAL_FORMS"]

    response = client.post(edit_url(draft, "history"), data)

    assert response.status_code == 400
    assert "ManagementForm data is missing or has been tampered with" in html(response)
    assert_unchanged(before, writes_before)


def test_an_upload_without_a_file_asks_for_one(cast: Cast) -> None:
    draft = canary_referral(cast, "draft")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(edit_url(draft, "attachments"), {})

    assert response.status_code == 400
    assert '<a href="#id_file">Add a record: Choose a file to upload.</a>' in html(response)
    assert_unchanged(before, writes_before)


def test_a_submitted_referral_cannot_be_edited_through_the_wizard(cast: Cast) -> None:
    referral = canary_referral(cast, "submitted")
    client = browser(cast, "provider")
    before, writes_before = Snapshot.take(), writes()

    response = client.post(edit_url(referral, "history"), history_post([TRIAL_1], go="next"))

    assert response.status_code == 302
    assert response["Location"] == f"/referrals/{referral.public_id}/"
    assert Snapshot.take() == before
    assert writes() == writes_before
    page = html(client.get(response["Location"]))
    assert f"Referral {referral.number} can no longer be changed." in page
