"""A canary message body (and subject, and attachment content) never appears in the raw database,
on disk, in any e-mail, any log record or any task's arguments; only the API's decrypted output
shows it, to a participant."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.app.task import Task
from django.core import mail
from django.db import connection

from messaging import services
from messaging.models import Thread
from tests.messaging.conftest import CANARY, client_for, pdf_upload, text_upload
from tests.personas import Cast

pytestmark = pytest.mark.django_db

SUBJECT_CANARY = "Subject-canary Zebulonia follow-up"
FILE_CANARY = "File-canary 88d1 lithium level 1.4"
CANARIES = ("Canary-7f3a9", "Zebulonia", "File-canary 88d1", "Quattlebaum")


@pytest.fixture
def task_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    """Every task sent (its name, args and kwargs), while still sending it."""
    calls: list[tuple[str, Any, Any]] = []
    original = Task.apply_async

    def recording(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        calls.append((self.name, args, kwargs))
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", recording)
    return calls


def _all_rows() -> Iterator[tuple[str, tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                yield table, row


def _assert_absent(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} found in {where}"


def test_the_canary_stays_encrypted_everywhere(
    cast: Cast,
    caplog: pytest.LogCaptureFixture,
    task_calls: list[tuple[str, Any, Any]],
    media_root: Path,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, coordinator = client_for(cast, "provider"), client_for(cast, "coordinator")

    with django_capture_on_commit_callbacks(execute=True):
        created = provider.post(
            "/api/v1/threads/", {"subject": SUBJECT_CANARY, "body": CANARY}, format="json"
        )
    thread_id = created.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        sent = coordinator.post(
            f"/api/v1/threads/{thread_id}/messages/",
            {"body": f"Re: {CANARY}", "attachments": [text_upload(text=FILE_CANARY + "\n")]},
            format="multipart",
        )
        provider.post(
            f"/api/v1/threads/{thread_id}/messages/",
            {"body": CANARY, "attachments": [pdf_upload()]},
            format="multipart",
        )
        services.messages_escalate_unread()
    listed = coordinator.get(f"/api/v1/threads/{thread_id}/messages/")
    attachment_id = sent.json()["attachments"][0]["id"]
    downloaded = provider.get(f"/api/v1/message-attachments/{attachment_id}/download/")

    # The participants read it back in clear...
    assert created.status_code == 201
    assert [m["body"] for m in listed.json()["results"]] == [CANARY, f"Re: {CANARY}", CANARY]
    assert downloaded.getvalue().decode() == FILE_CANARY + "\n"
    thread = Thread.objects.get(public_id=thread_id)
    assert thread.subject == SUBJECT_CANARY

    # ...and nowhere else is it readable.
    rows = list(_all_rows())
    assert any(table == "messaging_message" for table, _row in rows)
    for table, row in rows:
        _assert_absent(repr(row), f"table {table}")
    for path in media_root.rglob("*"):
        if path.is_file():
            _assert_absent(path.read_bytes().decode("latin-1"), f"file {path.name}")
    # Three messages, each to the five participants other than its author.
    assert len(mail.outbox) == 15
    for email in mail.outbox:
        alternatives = getattr(email, "alternatives", [])
        content = " ".join(
            [str(email.subject), str(email.body), *(str(part[0]) for part in alternatives)]
        )
        _assert_absent(content, f"e-mail to {email.to}")
        assert thread.reference in content
    assert caplog.records
    for record in caplog.records:
        _assert_absent(record.getMessage(), f"log {record.name}")
        _assert_absent(repr(record.__dict__), f"log {record.name}")
    # A message's notifications are a task of their own; five recipients per message are one
    # publish of the e-mail fan-out task, which sends one task each.
    assert {name for name, _args, _kwargs in task_calls} == {
        "messaging.notify_participants",
        "notifications.send_email_deliveries",
        "notifications.send_email_delivery",
    }
    for name, args, kwargs in task_calls:
        _assert_absent(repr((args, kwargs)), f"task {name}")
