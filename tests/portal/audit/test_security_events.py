"""Security events and denials survive the rollback of the transaction around them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from celery import shared_task
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from portal.accounts.models import Organization, User
from portal.api.errors import NotFound
from portal.audit.context import audit_scope
from portal.audit.middleware import AuditContextMiddleware
from portal.audit.models import AuditEvent
from portal.audit.services import audit_denied, audit_record, security_event_record
from portal.crypto import keys
from portal.crypto.envelope import associated_data
from portal.crypto.errors import DecryptionError
from portal.crypto.values import decrypt_text, encrypt_text
from tests.factories import UserFactory


class Abort(Exception):
    pass


def _decrypt_with_wrong_row() -> str:
    token = encrypt_text("CANARY-PHI", associated_data=associated_data("a", "m", "f", "row-1"))
    return decrypt_text(
        token, associated_data=associated_data("a", "m", "f", "row-2"), label="a.m.f:row-2"
    )


def _security_events() -> list[tuple[str, str, dict[str, Any]]]:
    return list(
        AuditEvent.objects.filter(action__startswith="security.")
        .order_by("sequence")
        .values_list("action", "outcome", "details")
    )


DECRYPTION_FAILED = (
    "security.decryption_failed",
    "denied",
    {"reason": "authentication_failed", "key_id": "dev1", "label": "a.m.f:row-2"},
)


@pytest.fixture(autouse=True)
def _known_key_id(settings: Any) -> Iterator[None]:
    settings.PORTAL_ENCRYPTION_KEYS = "dev1:" + "A" * 43 + "="
    settings.PORTAL_ENCRYPTION_ACTIVE_KEY = "dev1"
    keys.reset()
    yield
    keys.reset()  # the cached keyring must not outlive these settings


def _view_that_fails_to_decrypt_inside_a_transaction(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        Organization.objects.create(name="Rolled Back Practice", kind="practice")
        _decrypt_with_wrong_row()
    return HttpResponse("unreachable")


@pytest.mark.django_db
def test_a_decryption_failure_in_a_request_is_recorded_although_the_request_rolls_back() -> None:
    request = RequestFactory().get(
        "/", HTTP_X_REQUEST_ID="req-decrypt-0001", REMOTE_ADDR="10.1.1.1"
    )

    with pytest.raises(DecryptionError):
        AuditContextMiddleware(_view_that_fails_to_decrypt_inside_a_transaction)(request)

    assert not Organization.objects.filter(name="Rolled Back Practice").exists()
    assert _security_events() == [DECRYPTION_FAILED]
    event = AuditEvent.objects.get(action="security.decryption_failed")
    assert (event.request_id, event.ip, event.actor, event.actor_label) == (
        "req-decrypt-0001",
        "10.1.1.1",
        None,
        "anonymous",
    )
    assert "CANARY" not in str(event.details)


def _record_then_roll_back() -> None:
    with transaction.atomic():
        security_event_record(action="security.tamper_suspected", details={"table": "x"})
        audit_record(actor=None, action="referral.updated", object_type="referral", object_id="r")
        raise Abort


@pytest.mark.django_db
def test_in_a_scope_the_event_waits_for_the_rollback_and_is_written_when_the_scope_closes() -> None:
    with audit_scope(request_id="req-scope-0001"):
        with pytest.raises(Abort):
            _record_then_roll_back()
        assert _security_events() == []

    assert _security_events() == [("security.tamper_suspected", "denied", {"table": "x"})]
    assert not AuditEvent.objects.filter(action="referral.updated").exists()


@pytest.mark.django_db
def test_when_the_transaction_commits_the_event_is_written_once(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with audit_scope():
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with transaction.atomic():
                security_event_record(action="security.tamper_suspected", details=None)
            assert _security_events() == []
        # The commit ran the callback: written before the scope closes...
        assert len(callbacks) == 1
        assert len(_security_events()) == 1

    # ...and not a second time when it does.
    assert len(_security_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_event_is_written_at_once() -> None:
    with audit_scope():
        security_event_record(action="security.tamper_suspected", details={"n": 1})
        assert len(_security_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_with_real_commits_the_event_outlives_a_rolled_back_transaction() -> None:
    """No test transaction around it: the rollback and the later write are real ones."""
    with audit_scope(request_id="req-real-00001"), pytest.raises(DecryptionError):
        _decrypt_in_a_transaction()

    assert not Organization.objects.filter(name="Rolled Back Practice").exists()
    assert _security_events() == [DECRYPTION_FAILED]


@pytest.mark.django_db(transaction=True)
def test_with_real_commits_a_decryption_failure_outside_any_transaction_is_written() -> None:
    with pytest.raises(DecryptionError):
        _decrypt_with_wrong_row()

    assert _security_events() == [DECRYPTION_FAILED]


def _selector_refusing(user: User) -> None:
    """A selector inside a service's transaction, finding another practice's referral."""
    with transaction.atomic():
        audit_denied(
            actor=user,
            action="referral.read",
            object_type="referral",
            object_id="5b0e1f5e-3c57-4d5b-9b8f-0a4b7f0c2d11",
        )
        raise NotFound()


@pytest.mark.django_db
def test_a_denial_survives_the_not_found_that_rolls_its_transaction_back() -> None:
    user = UserFactory.create()

    with audit_scope(request_id="req-denied-0001"), pytest.raises(NotFound):
        _selector_refusing(user)

    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.outcome, event.object_id, event.request_id) == (
        user,
        "referral.read",
        "denied",
        "5b0e1f5e-3c57-4d5b-9b8f-0a4b7f0c2d11",
        "req-denied-0001",
    )


def _inner_scope_then_roll_back() -> None:
    with transaction.atomic():
        with audit_scope():  # e.g. a task run eagerly inside the request's transaction
            security_event_record(action="security.tamper_suspected", details=None)
        raise Abort


@pytest.mark.django_db
def test_a_scope_closing_inside_an_outer_transaction_hands_its_events_outwards() -> None:
    with audit_scope(request_id="req-outer-0001"):
        with pytest.raises(Abort):
            _inner_scope_then_roll_back()
        assert _security_events() == []

    assert len(_security_events()) == 1


@shared_task(name="tests.audit.decrypt_in_a_transaction")
def _decrypt_in_a_transaction() -> None:
    with transaction.atomic():
        Organization.objects.create(name="Rolled Back Practice", kind="practice")
        _decrypt_with_wrong_row()


@pytest.mark.django_db
def test_a_celery_task_has_its_own_scope_and_keeps_the_event() -> None:
    with pytest.raises(DecryptionError):
        _decrypt_in_a_transaction.delay()

    assert not Organization.objects.filter(name="Rolled Back Practice").exists()
    assert _security_events() == [DECRYPTION_FAILED]
    assert AuditEvent.objects.get().request_id == ""


@pytest.mark.django_db
def test_recording_a_security_event_never_hides_the_callers_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.CRITICAL, logger="portal.security"),
        mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("audit unavailable")),
        pytest.raises(DecryptionError),
    ):
        _decrypt_with_wrong_row()

    assert [record.message for record in caplog.records if record.levelname == "CRITICAL"] == [
        "audit.security_event_lost"
    ]


@pytest.mark.django_db
def test_an_unbuildable_security_event_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="portal.security"):
        security_event_record(action="Not A Name", details=None)

    assert AuditEvent.objects.count() == 0
    assert [record.message for record in caplog.records] == ["audit.security_event_lost"]


@pytest.mark.django_db
def test_a_denial_that_cannot_be_recorded_does_not_replace_the_not_found(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="portal.security"):
        audit_denied(actor=None, action="referral.read", object_type="referral", object_id="x" * 99)

    assert AuditEvent.objects.count() == 0
    assert [record.message for record in caplog.records] == ["audit.security_event_lost"]
