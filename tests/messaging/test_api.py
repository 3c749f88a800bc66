"""The messaging API: shapes (DESIGN.md section 6), cursors and ``since``, bad input (4xx and no
change), retraction, and the pinned query counts of a 10,000-message thread."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIClient

from messaging import services
from messaging.apis import MessageOutputSerializer
from messaging.models import (
    BODY_MAX_LENGTH,
    Message,
    MessageAttachment,
    MessageKind,
    Thread,
    ThreadReadState,
)
from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals.models import Referral
from tests.messaging.conftest import Send, client_for, pdf_upload, text_upload
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data

pytestmark = pytest.mark.django_db


def _state() -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    return (
        list(Thread.objects.order_by("pk").values_list("pk", "last_sequence", "updated_at")),
        list(Message.objects.order_by("pk").values_list("pk", "retracted_at")),
        MessageAttachment.objects.count(),
        list(ThreadReadState.objects.order_by("pk").values_list("pk", "last_read_sequence")),
        Notification.objects.count(),
        len(mail.outbox),
        AuditEvent.objects.filter(outcome="allowed").count(),
    )


def _iso(moment: datetime.datetime) -> str:
    """A time as the API writes it (in the portal's time zone)."""
    return str(serializers.DateTimeField().to_representation(moment))


# --- shapes --------------------------------------------------------------------------------------


def test_thread_list_item_shape(
    cast: Cast, referral: Referral, referral_thread: Thread, send: Send
) -> None:
    send("provider", referral_thread, "Hello.")

    response = client_for(cast, "coordinator").get("/api/v1/threads/")

    assert response.status_code == 200
    body = response.json()
    assert (body["next"], body["previous"]) == (None, None)
    referral_thread.refresh_from_db()
    assert body["results"] == [
        {
            "id": str(referral_thread.public_id),
            "referral": str(referral.public_id),
            "subject": f"Referral {referral.number}",
            "unread_count": 1,
            "last_message_at": _iso(referral_thread.last_message_at),
            "kind": "referral",
            "reference": referral.number,
            "practice": {"id": str(cast.practice.public_id), "name": cast.practice.name},
            "clinic": {"id": str(cast.clinic.public_id), "name": cast.clinic.name},
        }
    ]
    event = AuditEvent.objects.get(action="inbox.read")
    assert (event.actor, event.details) == (cast.user("coordinator"), {"threads": 1})


def test_message_shape_for_user_system_and_retracted_messages(
    cast: Cast, referral: Referral, referral_thread: Thread, send: Send
) -> None:
    sent = send("provider", referral_thread, "With a file.", attachments=[pdf_upload()])
    system = services.system_message_post(referral=referral, text="Progress report 2 is ready.")
    taken_back = send("coordinator", referral_thread, "Oops.")
    services.message_retract(actor=cast.user("coordinator"), message=taken_back)
    attachment = sent.attachments.get()

    response = client_for(cast, "colleague").get(
        f"/api/v1/threads/{referral_thread.public_id}/messages/"
    )

    assert response.status_code == 200
    taken_back.refresh_from_db()
    assert response.json() == {
        "results": [
            {
                "id": str(sent.public_id),
                "author": {"id": str(cast.user("provider").public_id), "name": "Provider Persona"},
                "author_side": "practice",
                "body": "With a file.",
                "kind": "user",
                "created_at": _iso(sent.created_at),
                "attachments": [
                    {
                        "id": str(attachment.public_id),
                        "name": "letter.pdf",
                        "content_type": "application/pdf",
                        "size": attachment.size,
                        "sha256": attachment.sha256,
                        "download_url": (
                            f"/api/v1/message-attachments/{attachment.public_id}/download/"
                        ),
                    }
                ],
                "retracted": False,
                "retracted_at": None,
            },
            {
                "id": str(system.public_id),
                "author": None,
                "author_side": "",
                "body": "Progress report 2 is ready.",
                "kind": "system",
                "created_at": _iso(system.created_at),
                "attachments": [],
                "retracted": False,
                "retracted_at": None,
            },
            {
                "id": str(taken_back.public_id),
                "author": {
                    "id": str(cast.user("coordinator").public_id),
                    "name": "Coordinator Persona",
                },
                "author_side": "clinic",
                "body": None,
                "kind": "user",
                "created_at": _iso(taken_back.created_at),
                "attachments": [],
                "retracted": True,
                "retracted_at": _iso(taken_back.retracted_at),  # type: ignore[arg-type]
            },
        ],
        "next": None,
        "previous": None,
    }
    read = AuditEvent.objects.get(action="thread.read", actor=cast.user("colleague"))
    assert (read.object_id, read.details) == (str(referral_thread.public_id), {"messages": 3})
    # The file downloads with its name as an attachment.
    download = client_for(cast, "colleague").get(
        f"/api/v1/message-attachments/{attachment.public_id}/download/"
    )
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="letter.pdf"'
    assert download.getvalue().startswith(b"%PDF-1.4")


def test_the_direct_message_output_equals_drf_field_by_field_output(
    cast: Cast, referral: Referral, referral_thread: Thread, send: Send
) -> None:
    """MessageOutputSerializer builds its output directly (speed); its declared fields describe it
    in the schema. Both must give the same keys, in the same order, with the same values."""
    send("provider", referral_thread, "With files.", attachments=[pdf_upload(), text_upload()])
    services.system_message_post(referral=referral, text="Progress report 2 is ready.")
    taken_back = send("coordinator", referral_thread, "Oops.")
    services.message_retract(actor=cast.user("coordinator"), message=taken_back)
    messages = list(
        Message.objects.filter(thread=referral_thread)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("sequence")
    )
    serializer = MessageOutputSerializer()

    direct = [serializer.to_representation(message) for message in messages]
    by_fields = [
        serializers.Serializer.to_representation(serializer, message) for message in messages
    ]

    assert len(direct) == 3
    assert json.loads(json.dumps(direct)) == json.loads(json.dumps(by_fields))
    assert [list(item) for item in direct] == [list(item) for item in by_fields]
    assert [len(item["attachments"]) for item in direct] == [2, 0, 0]


def test_creating_a_general_thread(cast: Cast) -> None:
    response = client_for(cast, "coordinator").post(
        "/api/v1/threads/",
        {
            "subject": "Fax line changes",
            "body": "Our fax number changes on Monday.",
            "practice": str(cast.practice.public_id),
        },
        format="json",
    )

    assert response.status_code == 201
    thread = Thread.objects.get()
    assert response.json() == {
        "id": str(thread.public_id),
        "referral": None,
        "subject": "Fax line changes",
        "unread_count": 0,
        "last_message_at": _iso(thread.last_message_at),
        "kind": "general",
        "reference": thread.number,
        "practice": {"id": str(cast.practice.public_id), "name": cast.practice.name},
        "clinic": {"id": str(cast.clinic.public_id), "name": cast.clinic.name},
    }
    provider_view = client_for(cast, "provider").get(f"/api/v1/threads/{thread.public_id}/")
    assert provider_view.json()["unread_count"] == 1


def test_sending_json_and_multipart(cast: Cast, referral_thread: Thread) -> None:
    client = client_for(cast, "staff")
    path = f"/api/v1/threads/{referral_thread.public_id}/messages/"

    as_json = client.post(path, {"body": "Plain text."}, format="json")
    as_form = client.post(
        path,
        {"body": "Two files.", "attachments": [pdf_upload(), text_upload()]},
        format="multipart",
    )
    files_only = client.post(path, {"body": "", "attachments": [pdf_upload()]}, format="multipart")

    assert [as_json.status_code, as_form.status_code, files_only.status_code] == [201, 201, 201]
    assert as_json.json()["body"] == "Plain text."
    assert [a["name"] for a in as_form.json()["attachments"]] == ["letter.pdf", "note.txt"]
    assert files_only.json()["body"] == ""
    assert list(referral_thread.messages.values_list("sequence", flat=True)) == [1, 2, 3]


# --- bad input -----------------------------------------------------------------------------------

BAD_MESSAGES: list[tuple[Any, str, int]] = [
    ({"body": ""}, "json", 400),
    ({"body": "   "}, "json", 400),
    ({"body": "x" * (BODY_MAX_LENGTH + 1)}, "json", 400),
    ({}, "json", 400),
    ({"body": 123}, "json", 400),
    ({"body": None}, "json", 400),
    ({"body": ["a"]}, "json", 400),
    ({"body": {"text": "a"}}, "json", 400),
    ({"body": True}, "json", 400),
    ({"body": "Hi", "author": "someone"}, "json", 400),
    ({"body": "Hi", "kind": "system"}, "json", 400),
    ({"body": "Hi", "attachments": ["not a file"]}, "json", 400),
    ({"body": "Hi", "thread": "other"}, "multipart", 400),
    ({"body": "x" * (BODY_MAX_LENGTH + 1)}, "multipart", 400),
]


@pytest.mark.parametrize(("payload", "encoding", "status"), BAD_MESSAGES)
def test_bad_messages_get_4xx_and_change_nothing(
    cast: Cast, referral_thread: Thread, payload: Any, encoding: str, status: int
) -> None:
    before = _state()

    response = client_for(cast, "provider").post(
        f"/api/v1/threads/{referral_thread.public_id}/messages/", payload, format=encoding
    )

    assert response.status_code == status
    assert set(response.json()) >= {"detail", "code"}
    assert _state() == before


def test_malformed_json_and_wrong_content_types_are_refused(
    cast: Cast, referral_thread: Thread
) -> None:
    client = client_for(cast, "provider")
    path = f"/api/v1/threads/{referral_thread.public_id}/messages/"
    before = _state()

    broken = client.post(path, data='{"body": "x"', content_type="application/json")
    plain = client.post(path, data="body=x", content_type="text/plain")
    rejected_file = client.post(
        path,
        {"body": "See file.", "attachments": [text_upload(text="<html><body>x</body></html>")]},
        format="multipart",
    )

    assert [broken.status_code, plain.status_code, rejected_file.status_code] == [400, 415, 415]
    assert rejected_file.json()["code"] in {"active_content", "unsupported_type"}
    assert _state() == before


@pytest.mark.parametrize(
    "payload",
    [
        {"body": "Hi"},
        {"subject": "Hi", "body": ""},
        {"subject": "", "body": "Hi"},
        {"subject": "x" * 201, "body": "Hi"},
        {"subject": 5, "body": "Hi"},
        {"subject": "Hi", "body": "Hi", "status": "closed"},
        {"subject": "Hi", "body": "Hi", "practice": "not-a-uuid"},
        {"subject": "Hi", "body": "Hi", "practice": str(uuid.UUID(int=7))},
        {"referral": "not-a-uuid", "body": "Hi"},
        {"referral": None, "subject": "Hi", "body": 7},
    ],
)
def test_bad_thread_creation_gets_400_and_changes_nothing(
    cast: Cast, payload: dict[str, Any]
) -> None:
    before = _state()

    response = client_for(cast, "coordinator").post("/api/v1/threads/", payload, format="json")

    assert response.status_code == 400
    assert _state() == before


@pytest.mark.parametrize(
    "payload",
    [
        {"through": "not-a-uuid"},
        {"through": str(uuid.UUID(int=3))},
        {"through": 5},
        {"up_to": "now"},
    ],
)
def test_bad_mark_read_gets_400_and_changes_nothing(
    cast: Cast, referral_thread: Thread, send: Send, payload: dict[str, Any]
) -> None:
    send("provider", referral_thread, "Hello.")
    before = _state()

    response = client_for(cast, "coordinator").post(
        f"/api/v1/threads/{referral_thread.public_id}/read/", payload, format="json"
    )

    assert response.status_code == 400
    assert _state() == before


def test_mark_read_is_idempotent_through_the_api(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = send("provider", referral_thread, "One.")
    send("provider", referral_thread, "Two.")
    client = client_for(cast, "coordinator")
    path = f"/api/v1/threads/{referral_thread.public_id}/read/"

    partial = client.post(path, {"through": str(first.public_id)}, format="json")
    full = client.post(path, {}, format="json")
    again = client.post(path, {}, format="json")

    assert [r.json()["unread_count"] for r in (partial, full, again)] == [1, 0, 0]
    state = ThreadReadState.objects.get(user=cast.user("coordinator"))
    assert state.last_read_sequence == 2
    marked = AuditEvent.objects.filter(action="thread.read_marked", actor=cast.user("coordinator"))
    assert marked.count() == 2


def test_retraction_through_the_api(cast: Cast, referral_thread: Thread) -> None:
    client = client_for(cast, "provider")
    sent_at = datetime.datetime(2030, 1, 2, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(sent_at, tick=False):
        first = client.post(
            f"/api/v1/threads/{referral_thread.public_id}/messages/", {"body": "A"}, format="json"
        ).json()
        second = client.post(
            f"/api/v1/threads/{referral_thread.public_id}/messages/", {"body": "B"}, format="json"
        ).json()

    with time_machine.travel(sent_at + datetime.timedelta(minutes=10), tick=False):
        ok = client.post(f"/api/v1/messages/{first['id']}/retract/", {}, format="json")
        unknown_field = client.post(
            f"/api/v1/messages/{second['id']}/retract/", {"reason": "x"}, format="json"
        )
    with time_machine.travel(sent_at + datetime.timedelta(minutes=16), tick=False):
        late = client.post(f"/api/v1/messages/{second['id']}/retract/", {}, format="json")

    assert ok.status_code == 200
    assert (ok.json()["retracted"], ok.json()["body"]) == (True, None)
    assert unknown_field.status_code == 400
    assert (late.status_code, late.json()["code"]) == (409, "retraction_window_closed")
    assert Message.objects.get(public_id=second["id"]).body == "B"


# --- cursors and since ---------------------------------------------------------------------------


def _make_messages(thread: Thread, cast: Cast, count: int) -> list[Message]:
    return [
        services.message_send(actor=cast.user("provider"), thread=thread, body=f"Message {n}")
        for n in range(1, count + 1)
    ]


def test_cursor_pages_walk_forwards_and_back(cast: Cast, referral_thread: Thread) -> None:
    _make_messages(referral_thread, cast, 5)
    client = client_for(cast, "coordinator")
    path = f"/api/v1/threads/{referral_thread.public_id}/messages/?page_size=2"

    first = client.get(path).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    back = client.get(third["previous"]).json()

    def bodies(page: dict[str, Any]) -> list[str]:
        return [message["body"] for message in page["results"]]

    assert bodies(first) == ["Message 1", "Message 2"]
    assert first["previous"] is None
    assert bodies(second) == ["Message 3", "Message 4"]
    assert bodies(third) == ["Message 5"]
    assert third["next"] is None
    assert bodies(back) == ["Message 3", "Message 4"]


def test_since_a_message_or_a_time(cast: Cast, referral_thread: Thread) -> None:
    start = datetime.datetime(2030, 3, 1, 12, 0, tzinfo=datetime.UTC)
    messages = []
    for minute in range(4):
        with time_machine.travel(start + datetime.timedelta(minutes=minute), tick=False):
            messages.extend(_make_messages(referral_thread, cast, 1))
    client = client_for(cast, "coordinator")
    path = f"/api/v1/threads/{referral_thread.public_id}/messages/"

    after_second = client.get(path, {"since": str(messages[1].public_id)}).json()
    after_time = client.get(path, {"since": "2030-03-01T12:01:30Z"}).json()
    offset_time = client.get(path, {"since": "2030-03-01T08:02:00-04:00"}).json()
    nothing_new = client.get(path, {"since": str(messages[3].public_id)}).json()

    assert [m["id"] for m in after_second["results"]] == [
        str(messages[2].public_id),
        str(messages[3].public_id),
    ]
    assert [m["body"] for m in after_time["results"]] == ["Message 1", "Message 1"]
    assert [m["id"] for m in offset_time["results"]] == [str(messages[3].public_id)]
    assert nothing_new == {"results": [], "next": None, "previous": None}


def test_an_empty_poll_is_not_audited(cast: Cast, referral_thread: Thread) -> None:
    (message,) = _make_messages(referral_thread, cast, 1)

    client_for(cast, "coordinator").get(
        f"/api/v1/threads/{referral_thread.public_id}/messages/", {"since": str(message.public_id)}
    )

    assert not AuditEvent.objects.filter(action="thread.read").exists()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"since": "yesterday"}, "invalid_since"),
        ({"since": "2030-03-01T12:00:00"}, "invalid_since"),
        ({"since": str(uuid.UUID(int=9))}, "invalid_since"),
        ({"cursor": "garbage!"}, "invalid_cursor"),
        ({"cursor": "c2lkZXdheXM6MQ"}, "invalid_cursor"),
        ({"page_size": "0"}, "invalid"),
        ({"page_size": "101"}, "invalid"),
        ({"page_size": "many"}, "invalid"),
        ({"order": "desc"}, "invalid"),
    ],
)
def test_bad_queries_get_400(
    cast: Cast, referral_thread: Thread, query: dict[str, str], code: str
) -> None:
    _make_messages(referral_thread, cast, 1)

    response = client_for(cast, "coordinator").get(
        f"/api/v1/threads/{referral_thread.public_id}/messages/", query
    )

    assert (response.status_code, response.json()["code"]) == (400, code)


def test_since_a_message_of_another_thread_is_refused(
    cast: Cast, referral_thread: Thread, general_thread: Thread
) -> None:
    other = general_thread.messages.get()

    response = client_for(cast, "provider").get(
        f"/api/v1/threads/{referral_thread.public_id}/messages/", {"since": str(other.public_id)}
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_since")


# --- a long thread -------------------------------------------------------------------------------


def _bulk_thread(cast: Cast, count: int) -> Thread:
    """A general thread with ``count`` messages written by bulk_create (encrypted row by row)."""
    thread = services.thread_create(
        actor=cast.user("coordinator"),
        subject="Long thread",
        body="Message 1",
        practice_id=cast.practice.public_id,
    )
    now = timezone.now()
    authors = [cast.user("coordinator"), cast.user("provider")]
    Message.objects.bulk_create(
        [
            Message(
                thread=thread,
                sequence=sequence,
                kind=MessageKind.USER,
                author=authors[sequence % 2],
                author_side="clinic" if sequence % 2 == 0 else "practice",
                body=f"Message {sequence}",
            )
            for sequence in range(2, count + 1)
        ],
        batch_size=1000,
    )
    Thread.objects.filter(pk=thread.pk).update(last_sequence=count, last_message_at=now)
    return Thread.objects.get(pk=thread.pk)


def _queries(client: APIClient, path: str, **query: Any) -> tuple[int, dict[str, Any]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, query)
    assert response.status_code == 200
    return len(captured), response.json()


# Permission (MFA) and memberships in one query, the thread, the page of messages (which says
# which messages have files: none here, so no query for them), the audit row.
PAGE_QUERIES = 4


def test_a_page_of_a_10000_message_thread_costs_a_fixed_number_of_queries(cast: Cast) -> None:
    big = _bulk_thread(cast, 10_000)
    small = _bulk_thread(cast, 3)
    client = client_for(cast, "provider")
    big_path = f"/api/v1/threads/{big.public_id}/messages/"

    first_count, first = _queries(client, big_path, page_size=50)
    small_count, small_page = _queries(client, f"/api/v1/threads/{small.public_id}/messages/")
    next_count, following = _queries(client, first["next"].split("testserver")[1])
    last = Message.objects.get(thread=big, sequence=9_990)
    since_count, polled = _queries(client, big_path, since=str(last.public_id))
    wide_count, wide = _queries(client, big_path, page_size=100)

    assert [m["body"] for m in first["results"]][:2] == ["Message 1", "Message 2"]
    assert len(first["results"]) == 50
    assert len(small_page["results"]) == 3
    assert following["results"][0]["body"] == "Message 51"
    assert [m["body"] for m in polled["results"]] == [f"Message {n}" for n in range(9_991, 10_001)]
    assert len(wide["results"]) == 100
    assert first_count == small_count == next_count == wide_count == PAGE_QUERIES
    # A since given as a message id is looked up first.
    assert since_count == PAGE_QUERIES + 1


def test_the_thread_list_costs_a_fixed_number_of_queries(cast: Cast, send: Send) -> None:
    client = client_for(cast, "provider")
    for number in range(3):
        services.thread_create(actor=cast.user("colleague"), subject=f"T{number}", body="x")
    few, _ = _queries(client, "/api/v1/threads/")
    for number in range(3, 30):
        thread = services.thread_create(
            actor=cast.user("colleague"), subject=f"T{number}", body="x"
        )
        send("coordinator", thread, "Reply.")
    many, page = _queries(client, "/api/v1/threads/", page_size=30)

    assert len(page["results"]) == 30
    assert {item["unread_count"] for item in page["results"][:27]} == {2}
    # Permission (MFA) and memberships in one, the page of threads with unread counts, the audit
    # row.
    assert few == many == 3


def test_a_page_with_files_reads_them_in_one_query(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    client = client_for(cast, "provider")
    send("coordinator", referral_thread, "No file.")
    without_files, _ = _queries(client, f"/api/v1/threads/{referral_thread.public_id}/messages/")
    for number in range(3):
        send("coordinator", referral_thread, f"File {number}.", attachments=[pdf_upload()])

    with_files, page = _queries(client, f"/api/v1/threads/{referral_thread.public_id}/messages/")

    assert [len(item["attachments"]) for item in page["results"]] == [0, 1, 1, 1]
    assert with_files == without_files + 1 == PAGE_QUERIES + 1


def test_the_referral_detail_names_its_thread(cast: Cast) -> None:
    client = client_for(cast, "provider")
    created = client.post("/api/v1/referrals/", complete_referral_data(), format="json")
    referral_id = created.json()["id"]

    detail = client.get(f"/api/v1/referrals/{referral_id}/").json()

    thread = Thread.objects.get(referral__public_id=referral_id)
    assert created.json()["thread"] == str(thread.public_id)
    assert detail["thread"] == str(thread.public_id)
    thread_view = client.get(f"/api/v1/threads/{detail['thread']}/")
    assert thread_view.json()["referral"] == referral_id
