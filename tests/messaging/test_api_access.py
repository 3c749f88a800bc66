"""The access matrix: every messaging endpoint, the whole persona cast.

For each persona: the status code; for every refusal, nothing leaked (no body, no subject, no
thread id), no side effect (no message, read position, notification, e-mail, allowed audit
event or file) and, for an outsider, an answer identical to the one for a thread that does not
exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from rest_framework.test import APIClient

from messaging import services
from messaging.models import Message, MessageAttachment, Thread, ThreadReadState
from portal.audit.models import AuditEvent
from portal.crypto.models import EncryptedFile
from portal.notifications.models import Notification
from referrals.models import ReferralStatus
from tests.messaging.conftest import CANARY, client_for, pdf_upload
from tests.personas import ALL_PERSONAS, Cast, enrol_totp
from tests.referrals.factories import referral_in_state

pytestmark = pytest.mark.django_db

PARTICIPANTS = ("provider", "colleague", "staff", "coordinator", "clinician", "admin")
SUBJECT = "Subject-Canary-51c2"


@dataclass
class World:
    thread: Thread
    message: Message
    attachment: MessageAttachment


@pytest.fixture
def world(cast: Cast) -> World:
    thread = services.thread_create(
        actor=cast.user("coordinator"),
        subject=SUBJECT,
        body="Opening.",
        practice_id=cast.practice.public_id,
    )
    message = services.message_send(
        actor=cast.user("provider"), thread=thread, body=CANARY, attachments=[pdf_upload()]
    )
    return World(thread=thread, message=message, attachment=message.attachments.get())


@dataclass(frozen=True)
class Snapshot:
    messages: list[tuple[Any, ...]]
    read_states: list[tuple[Any, ...]]
    notifications: int
    mails: int
    allowed_audit: int
    files: int

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            messages=list(
                Message.objects.order_by("pk").values_list("pk", "retracted_at", "updated_at")
            ),
            read_states=list(
                ThreadReadState.objects.order_by("pk").values_list(
                    "pk", "last_read_sequence", "last_read_at"
                )
            ),
            notifications=Notification.objects.count(),
            mails=len(mail.outbox),
            allowed_audit=AuditEvent.objects.filter(outcome="allowed").count(),
            files=EncryptedFile.objects.count(),
        )


Call = Callable[[APIClient, World, uuid.UUID | None], Any]


def _thread_id(world: World, missing: uuid.UUID | None) -> uuid.UUID:
    return missing or world.thread.public_id


CALLS: dict[str, Call] = {
    "detail": lambda client, world, missing: client.get(
        f"/api/v1/threads/{_thread_id(world, missing)}/"
    ),
    "messages": lambda client, world, missing: client.get(
        f"/api/v1/threads/{_thread_id(world, missing)}/messages/"
    ),
    "send": lambda client, world, missing: client.post(
        f"/api/v1/threads/{_thread_id(world, missing)}/messages/",
        {"body": "From the matrix."},
        format="json",
    ),
    "read": lambda client, world, missing: client.post(
        f"/api/v1/threads/{_thread_id(world, missing)}/read/", {}, format="json"
    ),
    "retract": lambda client, world, missing: client.post(
        f"/api/v1/messages/{missing or world.message.public_id}/retract/", {}, format="json"
    ),
    "download": lambda client, world, missing: client.get(
        f"/api/v1/message-attachments/{missing or world.attachment.public_id}/download/"
    ),
}

#: The status each participant gets; outsiders get 404 and anonymous 401 everywhere.
PARTICIPANT_STATUS = {
    "detail": 200,
    "messages": 200,
    "send": 201,
    "read": 200,
    "download": 200,
}


def _expected(persona: str, call: str) -> int:
    if persona == "anonymous":
        return 401
    if persona == "outsider":
        return 404
    if call == "retract":
        return 200 if persona == "provider" else 403
    return PARTICIPANT_STATUS[call]


def _assert_nothing_leaked(response: Any, world: World) -> None:
    content = response.getvalue()
    for secret in (CANARY, SUBJECT, str(world.thread.public_id), "letter.pdf"):
        assert secret.encode() not in content


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_matrix(cast: Cast, world: World, persona: str, call: str) -> None:
    client = client_for(cast, persona)
    before = Snapshot.take()

    response = CALLS[call](client, world, None)

    expected = _expected(persona, call)
    assert response.status_code == expected, getattr(response, "data", None)
    if expected >= 400:
        _assert_nothing_leaked(response, world)
        assert Snapshot.take() == before
    if persona == "outsider":
        missing = CALLS[call](client, world, uuid.uuid4())
        assert (missing.status_code, missing.json()) == (404, response.json())
        assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_outsider_probing_an_existing_thread_is_audited_as_denied(
    cast: Cast, world: World, call: str
) -> None:
    client = client_for(cast, "outsider")

    CALLS[call](client, world, uuid.uuid4())
    assert not AuditEvent.objects.filter(outcome="denied").exists()

    CALLS[call](client, world, None)
    denied = AuditEvent.objects.get(outcome="denied")
    assert denied.actor == cast.user("outsider")
    assert denied.object_id in {
        str(world.thread.public_id),
        str(world.message.public_id),
        str(world.attachment.public_id),
    }


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_list_shows_only_the_threads_of_the_persona(cast: Cast, world: World, persona: str) -> None:
    other = services.thread_create(
        actor=cast.user("outsider"), subject="Practice B only", body="Hello."
    )

    response = client_for(cast, persona).get("/api/v1/threads/")

    if persona == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    listed = {item["id"] for item in response.json()["results"]}
    expected = {
        "outsider": {str(other.public_id)},
        "provider": {str(world.thread.public_id)},
        "colleague": {str(world.thread.public_id)},
        "staff": {str(world.thread.public_id)},
    }.get(persona, {str(world.thread.public_id), str(other.public_id)})
    assert listed == expected
    if persona == "outsider":
        _assert_nothing_leaked(response, world)


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_posting_into_a_referral_thread_by_referral_id(cast: Cast, persona: str) -> None:
    referral = referral_in_state(cast, ReferralStatus.SUBMITTED)
    thread = services.referral_thread_ensure(referral=referral)
    before = Snapshot.take()

    response = client_for(cast, persona).post(
        "/api/v1/threads/", {"referral": str(referral.public_id), "body": "Hi."}, format="json"
    )

    expected = {"anonymous": 401, "outsider": 404}.get(persona, 201)
    assert response.status_code == expected
    if expected == 201:
        assert response.json()["id"] == str(thread.public_id)
        assert thread.messages.get().body == "Hi."
    else:
        assert Snapshot.take() == before
        assert str(thread.public_id) not in response.content.decode()
    if persona == "outsider":
        missing = client_for(cast, persona).post(
            "/api/v1/threads/", {"referral": str(uuid.uuid4()), "body": "Hi."}, format="json"
        )
        assert (missing.status_code, missing.json()) == (404, response.json())


@pytest.mark.parametrize("persona", ["coordinator", "clinician", "admin", "outsider"])
def test_the_thread_of_a_draft_is_hidden_from_the_clinic_like_a_missing_one(
    cast: Cast, persona: str
) -> None:
    draft = referral_in_state(cast, ReferralStatus.DRAFT)
    thread = services.referral_thread_ensure(referral=draft)
    services.message_send(actor=cast.user("provider"), thread=thread, body=CANARY)
    client = client_for(cast, persona)

    for path in (
        f"/api/v1/threads/{thread.public_id}/",
        f"/api/v1/threads/{thread.public_id}/messages/",
    ):
        response = client.get(path)
        assert (response.status_code, response.json()) == (
            404,
            {"detail": "Not found.", "code": "not_found"},
        )
    listed = client.get("/api/v1/threads/").json()["results"]
    assert str(thread.public_id) not in {item["id"] for item in listed}


def test_a_participant_without_mfa_gets_mfa_required(cast: Cast, world: World) -> None:
    Authenticator.objects.filter(user=cast.user("coordinator")).delete()
    client = client_for(cast, "coordinator")

    for path in ("/api/v1/threads/", f"/api/v1/threads/{world.thread.public_id}/messages/"):
        response = client.get(path)
        assert (response.status_code, response.json()["code"]) == (403, "mfa_required")
    enrol_totp(cast.user("coordinator"))
    assert client.get("/api/v1/threads/").status_code == 200
