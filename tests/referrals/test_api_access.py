"""The access matrix: every referral endpoint and action, over the whole persona cast.

For each call: the status code; a refused call's body says nothing about the referral (no
number, no patient); and a refused call changes nothing (rows, timeline, allowed audit events,
notifications, e-mails, tasks enqueued on commit).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.http import StreamingHttpResponse

from portal.audit.models import AuditEvent
from referrals.models import Referral
from tests.personas import ALL_PERSONAS, Cast
from tests.referrals.factories import (
    CANARY_FAMILY_NAME,
    CANARY_GIVEN_NAME,
    PatientFactory,
    complete_referral_data,
    referral_in_state,
)
from tests.referrals.helpers import Snapshot, action_body, api_client, enqueued

OK, FORBIDDEN, NOT_FOUND, CONFLICT = 200, 403, 404, 409
ANONYMOUS = "anonymous"

# Who may read a referral, by state: practice A sees its drafts; the clinic sees it once submitted.
READ_DRAFT = {
    "provider": OK, "colleague": OK, "staff": OK, "outsider": NOT_FOUND,
    "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
}  # fmt: skip
READ_SUBMITTED = {
    "provider": OK, "colleague": OK, "staff": OK, "outsider": NOT_FOUND,
    "coordinator": OK, "clinician": OK, "admin": OK,
}  # fmt: skip


def _coordinator_only() -> dict[str, int]:
    return {
        "provider": FORBIDDEN, "colleague": FORBIDDEN, "staff": FORBIDDEN,
        "outsider": NOT_FOUND, "coordinator": OK, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }  # fmt: skip


def _clinician_only() -> dict[str, int]:
    return {**_coordinator_only(), "coordinator": FORBIDDEN, "clinician": OK}


ACTION_MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("sign-off", "draft", {
        "provider": OK, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
    }),
    # Not signed off: staff must wait for the provider (409 sign_off_required).
    ("submit", "draft", {
        "provider": OK, "colleague": FORBIDDEN, "staff": CONFLICT, "outsider": NOT_FOUND,
        "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
    }),
    ("submit", "info_requested", {
        "provider": OK, "colleague": FORBIDDEN, "staff": OK, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
    ("review", "submitted", _coordinator_only()),
    ("request-info", "in_review", _coordinator_only()),
    ("accept", "in_review", _coordinator_only()),
    ("decline", "submitted", _coordinator_only()),
    ("schedule", "accepted", _coordinator_only()),
    ("no-show", "scheduled", _coordinator_only()),
    ("start-treatment", "scheduled", _clinician_only()),
    ("complete", "in_treatment", _clinician_only()),
    ("acknowledge", "completed", {
        "provider": OK, "colleague": FORBIDDEN, "staff": FORBIDDEN, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
    ("cancel", "submitted", {
        "provider": OK, "colleague": FORBIDDEN, "staff": OK, "outsider": NOT_FOUND,
        "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
    }),
]  # fmt: skip


def _canary_referral(cast: Cast, state: str) -> Referral:
    patient = PatientFactory.create(
        practice=cast.practice,
        given_name=CANARY_GIVEN_NAME,
        family_name=CANARY_FAMILY_NAME,
        created_by=cast.user("provider"),
    )
    return referral_in_state(cast, state, patient=patient)


def _assert_refused(
    response: Any, referral: Referral, before: Snapshot, callbacks: list[Any]
) -> None:
    body = response.content.decode()
    assert referral.number not in body
    assert str(referral.public_id) not in body
    assert CANARY_GIVEN_NAME not in body
    assert CANARY_FAMILY_NAME not in body
    assert set(response.json()) <= {"detail", "code", "status", "allowed_actions"}
    assert Snapshot.take() == before
    assert enqueued(callbacks) == []


def _expect(persona: str, table: dict[str, int]) -> int:
    return 0 if persona == ANONYMOUS else table[persona]


def _check(
    response: Any,
    expected: int,
    referral: Referral,
    before: Snapshot,
    callbacks: list[Any],
) -> None:
    if expected == 0:
        assert response.status_code in {401, 403}
        assert response.json()["code"] == "not_authenticated"
        _assert_refused(response, referral, before, callbacks)
        return
    assert response.status_code == expected, response.content
    if expected == NOT_FOUND:
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    if expected in {NOT_FOUND, FORBIDDEN}:
        _assert_refused(response, referral, before, callbacks)


@pytest.mark.parametrize(("action", "state", "table"), ACTION_MATRIX)
@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_actions(
    cast: Cast,
    persona: str,
    action: str,
    state: str,
    table: dict[str, int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    referral = _canary_referral(cast, state)
    if action in {"sign-off", "submit"} and state == "draft":
        # Entered by staff on the provider's behalf, not signed off yet.
        referral.created_by = cast.user("staff")
        referral.provider_signed_off_at = None
        referral.save(update_fields=["created_by", "provider_signed_off_at"])
    client = api_client(cast, persona)
    before = Snapshot.take()
    expected = _expect(persona, table)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            f"/api/v1/referrals/{referral.public_id}/{action}/",
            action_body(action, state),
            format="json",
        )

    _check(response, expected, referral, before, callbacks)
    if expected == CONFLICT:
        assert response.json()["code"] == "sign_off_required"
        assert Snapshot.take() == before
        assert enqueued(callbacks) == []
    if expected == OK:
        referral.refresh_from_db()
        assert response.json()["status"] == referral.status != state or action in {
            "sign-off",
            "schedule",
        }


@pytest.mark.parametrize("state", ["draft", "submitted"])
@pytest.mark.parametrize("persona", ALL_PERSONAS)
@pytest.mark.parametrize("path", ["", "events/", "attachments/", "fhir/"])
def test_reads(
    cast: Cast,
    persona: str,
    state: str,
    path: str,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    referral = _canary_referral(cast, state)
    client = api_client(cast, persona)
    before = Snapshot.take()
    expected = _expect(persona, READ_DRAFT if state == "draft" else READ_SUBMITTED)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.get(f"/api/v1/referrals/{referral.public_id}/{path}")

    _check(response, expected, referral, before, callbacks)
    if expected == OK and path in {"", "fhir/"}:
        assert CANARY_GIVEN_NAME in response.content.decode()
        assert (
            AuditEvent.objects.filter(
                action="referral.read", actor=cast.user(persona), object_id=str(referral.public_id)
            ).count()
            == 1
        )


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_a_refused_read_of_an_existing_referral_is_audited(cast: Cast, persona: str) -> None:
    referral = _canary_referral(cast, "draft")
    missing = "6f1c1c0e-9a63-4c4f-8f59-1b0c2a3d4e5f"

    existing = api_client(cast, persona).get(f"/api/v1/referrals/{referral.public_id}/")
    absent = api_client(cast, persona).get(f"/api/v1/referrals/{missing}/")

    denied = list(AuditEvent.objects.filter(outcome="denied").values_list("object_id", flat=True))
    if READ_DRAFT.get(persona) == NOT_FOUND:
        assert existing.status_code == absent.status_code == NOT_FOUND
        assert existing.json() == absent.json()
        assert denied == [str(referral.public_id)]
    else:
        assert denied == []


@pytest.mark.parametrize(
    ("state", "table"),
    [
        ("draft", {
            "provider": OK, "colleague": FORBIDDEN, "staff": OK, "outsider": NOT_FOUND,
            "coordinator": NOT_FOUND, "clinician": NOT_FOUND, "admin": NOT_FOUND,
        }),
        ("info_requested", {
            "provider": OK, "colleague": FORBIDDEN, "staff": OK, "outsider": NOT_FOUND,
            "coordinator": FORBIDDEN, "clinician": FORBIDDEN, "admin": FORBIDDEN,
        }),
        ("in_review", {
            "provider": CONFLICT, "colleague": FORBIDDEN, "staff": CONFLICT,
            "outsider": NOT_FOUND, "coordinator": FORBIDDEN, "clinician": FORBIDDEN,
            "admin": FORBIDDEN,
        }),
    ],
)  # fmt: skip
@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_edit(
    cast: Cast,
    persona: str,
    state: str,
    table: dict[str, int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    referral = _canary_referral(cast, state)
    before = Snapshot.take()
    expected = _expect(persona, table)

    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client(cast, persona).patch(
            f"/api/v1/referrals/{referral.public_id}/", {"episode_months": 20}, format="json"
        )

    _check(response, expected, referral, before, callbacks)
    referral.refresh_from_db()
    assert referral.episode_months == (20 if expected == OK else 14)
    if expected == CONFLICT:
        assert response.json()["code"] == "not_editable"
        assert response.json()["status"] == state
        assert Snapshot.take() == before


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("provider", 201), ("colleague", 201), ("outsider", 201), ("staff", 400),
        ("coordinator", 403), ("clinician", 403), ("admin", 403), (ANONYMOUS, 0),
    ],
)  # fmt: skip
def test_create(cast: Cast, persona: str, expected: int) -> None:
    before = Snapshot.take()

    response = api_client(cast, persona).post(
        "/api/v1/referrals/", complete_referral_data(), format="json"
    )

    if expected == 0:
        assert response.status_code in {401, 403}
        assert Snapshot.take() == before
        return
    assert response.status_code == expected, response.content
    if expected == 201:
        referral = Referral.objects.get(public_id=response.json()["id"])
        practice = cast.other_practice if persona == "outsider" else cast.practice
        assert (referral.practice, referral.provider) == (practice, cast.user(persona))
    else:
        assert Snapshot.take() == before


def test_staff_create_for_a_provider_of_their_practice_only(cast: Cast) -> None:
    client = api_client(cast, "staff")
    before = Snapshot.take()

    foreign = client.post(
        "/api/v1/referrals/",
        complete_referral_data(provider=str(cast.user("outsider").public_id)),
        format="json",
    )
    assert foreign.status_code == 400
    assert foreign.json()["fields"] == {"provider": "Choose an active provider of your practice."}
    assert Snapshot.take() == before

    own = client.post(
        "/api/v1/referrals/",
        complete_referral_data(provider=str(cast.user("provider").public_id)),
        format="json",
    )
    assert own.status_code == 201
    assert own.json()["provider"]["id"] == str(cast.user("provider").public_id)
    assert own.json()["created_by"]["id"] == str(cast.user("staff").public_id)


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_list_shows_only_what_the_persona_may_see(cast: Cast, persona: str) -> None:
    draft = _canary_referral(cast, "draft")
    submitted = referral_in_state(cast, "submitted")
    elsewhere = referral_in_state(
        cast, "submitted", practice=cast.other_practice, provider=cast.user("outsider"),
        created_by=cast.user("outsider"), patient=PatientFactory.create(
            practice=cast.other_practice, created_by=cast.user("outsider")
        ),
    )  # fmt: skip
    expected = {
        "provider": {draft, submitted},
        "colleague": {draft, submitted},
        "staff": {draft, submitted},
        "outsider": {elsewhere},
        "coordinator": {submitted, elsewhere},
        "clinician": {submitted, elsewhere},
        "admin": {submitted, elsewhere},
    }

    response = api_client(cast, persona).get("/api/v1/referrals/")

    if persona == ANONYMOUS:
        assert response.status_code in {401, 403}
        return
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {
        str(referral.public_id) for referral in expected[persona]
    }
    assert CANARY_GIVEN_NAME not in response.content.decode()


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("provider", 201), ("staff", 201), ("colleague", 403), ("outsider", 404),
        ("coordinator", 404), ("clinician", 404), ("admin", 404), (ANONYMOUS, 0),
    ],
)  # fmt: skip
def test_upload(
    cast: Cast,
    persona: str,
    expected: int,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    referral = _canary_referral(cast, "draft")
    upload = io.BytesIO(b"Psychiatric evaluation, plain text.\n")
    upload.name = "evaluation.txt"
    before = Snapshot.take()

    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client(cast, persona).post(
            f"/api/v1/referrals/{referral.public_id}/attachments/",
            {"file": upload},
            format="multipart",
        )

    if expected == 201:
        assert response.status_code == 201, response.content
        assert referral.attachments.count() == 1
        return
    _check(response, expected, referral, before, callbacks)


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_download(cast: Cast, persona: str) -> None:
    referral = _canary_referral(cast, "submitted")
    upload = io.BytesIO(b"Psychiatric evaluation, plain text.\n")
    upload.name = "evaluation.txt"
    from referrals.services import attachment_upload

    referral.status = "info_requested"
    referral.save(update_fields=["status"])
    attachment = attachment_upload(
        actor=cast.user("provider"), referral=referral, uploaded_file=upload
    )
    referral.status = "submitted"
    referral.save(update_fields=["status"])
    before = Snapshot.take()

    response = api_client(cast, persona).get(
        f"/api/v1/attachments/{attachment.public_id}/download/"
    )

    expected = _expect(persona, READ_SUBMITTED)
    if expected == OK:
        assert response.status_code == 200
        assert isinstance(response, StreamingHttpResponse)
        content = b"".join(response.streaming_content)
        assert content == b"Psychiatric evaluation, plain text.\n"
        assert response["Content-Disposition"] == 'attachment; filename="evaluation.txt"'
        return
    if expected == 0:
        assert response.status_code in {401, 403}
    else:
        assert response.status_code == expected
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert Snapshot.take() == before
