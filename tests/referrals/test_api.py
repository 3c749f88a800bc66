"""The referral API's shapes, validation, filters, pagination and query counts."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from referrals import hooks
from referrals.models import Referral
from tests.personas import Cast
from tests.referrals.factories import (
    ReferralFactory,
    complete_referral_data,
    referral_in_state,
)
from tests.referrals.helpers import Snapshot, api_client


def _post(cast: Cast, persona: str, data: Any) -> Any:
    return api_client(cast, persona).post("/api/v1/referrals/", data, format="json")


def test_create_returns_the_detail_with_screening_and_actions(cast: Cast) -> None:
    response = _post(cast, "provider", complete_referral_data())

    assert response.status_code == 201
    body = response.json()
    referral = Referral.objects.get(public_id=body["id"])
    assert body["number"] == referral.number
    assert body["status"] == "draft"
    assert body["patient"] == {
        "id": str(referral.patient.public_id),
        "given_name": "Dana",
        "family_name": "Example",
        "birth_date": "1984-05-17",
        "sex": "female",
        "phone": "+1 407 555 0100",
        "email": "dana@example.org",
    }
    assert body["prior_trials"][0] == {
        "drug": "sertraline",
        "max_daily_dose_mg": 200.0,
        "weeks_at_dose": 8.0,
        "adherence": "good",
        "outcome": "no_response",
    }
    assert body["screening"] == {
        "adequate_failed_trials": 2,
        "trd": True,
        "phq9_total": 18,
        "phq9_band": "moderately_severe",
        "safety_flag": False,
        "contraindication_flags": [],
        "adequate_trial_weeks": 4,
    }
    assert body["allowed_actions"] == ["submit", "cancel"]
    assert (body["fhir_task_status"], body["x360_transaction"]) == ("draft", None)
    assert body["sla"] == {"triage_business_days": 2, "triage_due_at": None, "overdue": False}
    assert (body["triage_due_at"], body["overdue"]) == (None, False)
    # Messaging (when installed) resolves the thread through the hook; referrals knows no more.
    thread = hooks.referral_thread_id(referral)
    assert body["thread"] == (str(thread) if thread is not None else None)
    assert body["possible_duplicates"] == []
    assert body["crisis_resources"] is None
    assert body["practice"] == {"id": str(cast.practice.public_id), "name": cast.practice.name}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "accepted"}, "status"),
        ({"practice_id": 3}, "practice_id"),
        ({"patient": {"ssn": "123-45-6789"}}, "patient"),
        ({"prior_trials": [{"drug": "x", "dose": 1}]}, "prior_trials"),
        ({"contraindications": {"smoker": True}}, "contraindications"),
        ({"episode_months": "14"}, "episode_months"),
        ({"episode_months": 14.5}, "episode_months"),
        ({"episode_months": -1}, "episode_months"),
        ({"urgent": 1}, "urgent"),
        ({"suicidal_intent": "false"}, "suicidal_intent"),
        ({"reason": 42}, "reason"),
        ({"phq9_answers": [1, 2, 3]}, "phq9_answers"),
        ({"phq9_answers": [0, 0, 0, 0, 0, 0, 0, 0, 4]}, "phq9_answers"),
        ({"phq9_answers": [True, 0, 0, 0, 0, 0, 0, 0, 0]}, "phq9_answers"),
        ({"diagnosis_codes": ["F41.1"]}, "diagnosis_codes"),
        ({"diagnosis_codes": "F33.2"}, "diagnosis_codes"),
        ({"patient": {"birth_date": "17/05/1984"}}, "patient"),
        ({"patient": {"birth_date": "2999-01-01"}}, "patient"),
        ({"patient": {"sex": "f"}}, "patient"),
        ({"patient": {"email": "not-an-email"}}, "patient"),
        ({"office_bp_systolic": 900}, "office_bp_systolic"),
        ({"prior_trials": [{"weeks_at_dose": True}]}, "prior_trials"),
        ({"prior_trials": [{"adherence": "sometimes"}]}, "prior_trials"),
        ({"provider": "not-a-uuid"}, "provider"),
        ({"reason": "x" * 5001}, "reason"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    cast: Cast, payload: dict[str, Any], field: str
) -> None:
    before = Snapshot.take()

    response = _post(cast, "provider", payload)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["detail"]) == [field]
    assert Snapshot.take() == before


@pytest.mark.parametrize("body", ["[1, 2]", "not json", '"string"'])
def test_malformed_bodies_are_refused(cast: Cast, body: str) -> None:
    before = Snapshot.take()
    response = api_client(cast, "provider").post(
        "/api/v1/referrals/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert Snapshot.take() == before


def test_a_form_encoded_body_is_refused(cast: Cast) -> None:
    response = api_client(cast, "provider").post(
        "/api/v1/referrals/", "reason=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_diagnosis_codes_are_normalised(cast: Cast) -> None:
    response = _post(cast, "provider", {"diagnosis_codes": [" f33.2", "F32.A", "F31.81", "F33.2"]})

    assert response.status_code == 201
    assert response.json()["diagnosis_codes"] == ["F33.2", "F32.A", "F31.81"]


def test_submit_answers_per_field_errors(cast: Cast) -> None:
    created = _post(cast, "provider", {"patient": {"given_name": "Dana"}}).json()

    response = api_client(cast, "provider").post(
        f"/api/v1/referrals/{created['id']}/submit/", {}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["detail"]) == (
        "incomplete",
        "The referral is incomplete; see the fields.",
    )
    assert body["fields"]["patient.birth_date"] == "Required."
    assert body["fields"]["phq9_answers.8"] == "Item 9 is required."
    assert "patient.given_name" not in body["fields"]


def test_an_illegal_transition_answers_409_with_the_state_and_actions(cast: Cast) -> None:
    referral = referral_in_state(cast, "accepted")
    before = Snapshot.take()

    response = api_client(cast, "coordinator").post(
        f"/api/v1/referrals/{referral.public_id}/request-info/",
        {"question": "Anything else?"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "A referral that is accepted cannot be given the action 'request-info'.",
        "code": "invalid_transition",
        "status": "accepted",
        "allowed_actions": ["schedule"],
    }
    assert Snapshot.take() == before


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("request-info", {}, "question"),
        ("request-info", {"question": 5}, "question"),
        ("decline", {"advice": "x"}, "reason"),
        ("schedule", {"consult_at": "2030-01-01T09:00:00"}, "consult_at"),
        ("schedule", {"consult_at": "tomorrow"}, "consult_at"),
        ("review", {"note": "x"}, "note"),
        ("cancel", {"reason": "x", "status": "draft"}, "status"),
    ],
)
def test_action_bodies_are_validated(
    cast: Cast, action: str, body: dict[str, Any], field: str
) -> None:
    state = "accepted" if action == "schedule" else "in_review"
    referral = referral_in_state(cast, state)
    persona = "provider" if action == "cancel" else "coordinator"
    before = Snapshot.take()

    response = api_client(cast, persona).post(
        f"/api/v1/referrals/{referral.public_id}/{action}/", body, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert Snapshot.take() == before


def test_the_lifecycle_through_the_api(cast: Cast) -> None:
    provider, coordinator = api_client(cast, "provider"), api_client(cast, "coordinator")
    clinician = api_client(cast, "clinician")
    referral_id = _post(cast, "provider", complete_referral_data()).json()["id"]
    url = f"/api/v1/referrals/{referral_id}"

    def act(client: Any, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = client.post(f"{url}/{action}/", body or {}, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    submitted = act(provider, "submit")
    assert (submitted["status"], submitted["fhir_task_status"]) == ("submitted", "requested")
    assert submitted["x360_transaction"] == "PCC-55 request"
    assert submitted["allowed_actions"] == ["cancel"]
    assert submitted["triage_due_at"] is not None
    assert coordinator.get(f"{url}/").json()["allowed_actions"] == [
        "review", "request-info", "decline",
    ]  # fmt: skip
    act(coordinator, "review")
    asked = act(coordinator, "request-info", {"question": "Latest evaluation?"})
    assert asked["open_question"] == "Latest evaluation?"
    assert provider.get(f"{url}/").json()["open_question"] == "Latest evaluation?"
    patched = provider.patch(f"{url}/", {"allergies": "penicillin"}, format="json")
    assert patched.status_code == 200
    answered = act(provider, "submit", {"answer": "Attached."})
    assert answered["status"] == "in_review"
    accepted = act(coordinator, "accept")
    assert accepted["x360_transaction"] == "PCC-56 accept"
    consult = (timezone.now() + datetime.timedelta(days=3)).replace(microsecond=0)
    scheduled = act(coordinator, "schedule", {"consult_at": consult.isoformat()})
    assert datetime.datetime.fromisoformat(scheduled["consult_at"]) == consult
    act(clinician, "start-treatment")
    completed = act(clinician, "complete")
    assert completed["x360_transaction"] == "PCC-57 outcome"
    closed = act(provider, "acknowledge")
    assert (closed["status"], closed["allowed_actions"]) == ("closed", [])

    events = provider.get(f"{url}/events/").json()
    assert [event["kind"] for event in events["results"]] == [
        "created", "submitted", "reviewed", "info_requested", "updated", "answered",
        "accepted", "scheduled", "treatment_started", "completed", "closed",
    ]  # fmt: skip
    assert events["results"][3]["note"] == "Latest evaluation?"
    assert events["results"][3]["actor"]["id"] == str(cast.user("coordinator").public_id)


def test_decline_shows_reason_and_advice(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_review")
    response = api_client(cast, "coordinator").post(
        f"/api/v1/referrals/{referral.public_id}/decline/",
        {"reason": "Active psychosis.", "advice": "Early psychosis service."},
        format="json",
    )
    body = api_client(cast, "provider").get(f"/api/v1/referrals/{referral.public_id}/").json()

    assert response.status_code == 200
    assert (body["status"], body["decline_reason"], body["decline_advice"]) == (
        "declined",
        "Active psychosis.",
        "Early psychosis service.",
    )
    assert (body["fhir_task_status"], body["x360_transaction"]) == ("rejected", "PCC-56 decline")


def test_suicidal_intent_shows_crisis_resources(cast: Cast) -> None:
    body = _post(cast, "provider", {"suicidal_intent": True}).json()

    assert body["urgent"] is True
    assert body["screening"]["safety_flag"] is True
    assert "988" in body["crisis_resources"]
    assert "911" in body["crisis_resources"]


# --- list ------------------------------------------------------------------------------------


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_filters(cast: Cast) -> None:
    now = timezone.now()
    overdue = referral_in_state(cast, "submitted", triage_due_at=now - datetime.timedelta(hours=1))
    on_time = referral_in_state(cast, "in_review", urgent=True)
    draft = referral_in_state(cast, "draft")
    client = api_client(cast, "provider")

    assert set(_ids(client.get("/api/v1/referrals/?status=submitted,in_review"))) == {
        str(overdue.public_id),
        str(on_time.public_id),
    }
    assert _ids(client.get("/api/v1/referrals/?urgent=true")) == [str(on_time.public_id)]
    assert _ids(client.get("/api/v1/referrals/?overdue=true")) == [str(overdue.public_id)]
    assert set(_ids(client.get("/api/v1/referrals/?overdue=false"))) == {
        str(on_time.public_id),
        str(draft.public_id),
    }
    assert _ids(client.get(f"/api/v1/referrals/?q={draft.number[-5:]}")) == [str(draft.public_id)]
    listed = client.get("/api/v1/referrals/").json()["results"]
    assert [row["overdue"] for row in listed] == [False, False, True]  # newest first
    assert listed[0]["allowed_actions"] == ["submit", "cancel"]


@pytest.mark.parametrize("query", ["status=nope", "urgent=maybe", "overdue=2", "q=" + "1" * 21])
def test_bad_filters_are_refused(cast: Cast, query: str) -> None:
    response = api_client(cast, "provider").get(f"/api/v1/referrals/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_list_pages_with_a_cursor(cast: Cast) -> None:
    referrals = [referral_in_state(cast, "draft") for _ in range(5)]
    client = api_client(cast, "provider")

    first = client.get("/api/v1/referrals/?page_size=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    newest_first = [str(referral.public_id) for referral in reversed(referrals)]
    assert [row["id"] for row in first["results"] + second["results"] + third["results"]] == (
        newest_first
    )
    assert first["previous"] is None
    assert third["next"] is None
    assert set(first) == {"results", "next", "previous"}


def _count_list_queries(cast: Cast, persona: str, total: int) -> int:
    ReferralFactory.create_batch(
        total,
        practice=cast.practice,
        clinic=cast.clinic,
        provider=cast.user("provider"),
        created_by=cast.user("staff"),
        status="submitted",
        trials=0,
    )
    client = api_client(cast, persona)
    client.get("/api/v1/referrals/?page_size=100")  # warm up caches (content types, sessions)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/referrals/?page_size=100")
    assert len(response.json()["results"]) == total
    return len(queries.captured_queries)


@pytest.mark.parametrize("persona", ["provider", "coordinator"])
def test_list_query_count_does_not_grow_with_the_page(
    cast: Cast, persona: str, django_assert_num_queries: Any
) -> None:
    ten = _count_list_queries(cast, persona, 10)
    Referral.objects.all().delete()
    fifty = _count_list_queries(cast, persona, 50)

    assert ten == fifty
    # MFA gate and memberships (2), the page (1), nothing per row.
    with django_assert_num_queries(ten):
        api_client(cast, persona).get("/api/v1/referrals/?page_size=100")


def test_events_and_attachments_lists_are_paginated(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    client = api_client(cast, "provider")

    for path in ("events", "attachments"):
        body = client.get(f"/api/v1/referrals/{referral.public_id}/{path}/").json()
        assert set(body) == {"results", "next", "previous"}


def test_the_openapi_schema_describes_the_referral_api(cast: Cast) -> None:
    response = api_client(cast, "provider").get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/v1/referrals/",
        "/api/v1/referrals/{referral_id}/",
        "/api/v1/referrals/{referral_id}/submit/",
        "/api/v1/referrals/{referral_id}/request-info/",
        "/api/v1/referrals/{referral_id}/no-show/",
        "/api/v1/referrals/{referral_id}/events/",
        "/api/v1/referrals/{referral_id}/attachments/",
        "/api/v1/referrals/{referral_id}/fhir/",
        "/api/v1/attachments/{attachment_id}/download/",
    ):
        assert path in paths, path
    create = paths["/api/v1/referrals/"]["post"]
    assert create["summary"] == "Create a draft referral"
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert examples["ACompleteReferral"]["value"]["diagnosis_codes"] == ["F33.2"]
