"""Messaging benchmark for ``make bench``: what encryption and audit cost on the hot paths.

- message send: ``messaging.services.message_send`` (thread lock, sequence, encrypted insert,
  read position, audit event, in-app notifications for the five other participants);
- thread page: the portal's thread page (``GET /messages/<id>/``: the newest 50 messages of a
  2,000-message thread, decrypted and rendered with the header's unread badge);
- API page: ``GET /api/v1/threads/<id>/messages/?page_size=50``.

Each is measured as shipped and as the same work without encryption and audit: the field
encryption swapped for a plaintext pass-through and the audit writes for no-ops, everything else
identical, on a world of its own written in plaintext. Rounds of the two alternate (the machine
is shared and load drifts). In both, queueing the notification e-mails is left out: in production
it is one broker publish after commit, while in-process (eager) Celery would send the e-mails
inside the measurement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from rest_framework.test import APIClient

from messaging import services
from messaging.models import Message, MessageKind, Thread
from portal.accounts.models import Membership, Organization, Role, User

Row = tuple[str, float, float | None]

SEND = "message send: encrypted + audited vs plain"
PORTAL_PAGE = "thread page (portal, newest 50 of 2,000): encrypted + audited vs plain"
API_PAGE = "thread messages (API, 50 of 2,000): encrypted + audited vs plain"
PLAIN_PREFIX = "plain."
THREAD_MESSAGES = 2_000


@contextmanager
def without_encryption_and_audit() -> Iterator[None]:
    """The same code with the field encryption and the audit writes taken out."""

    def encrypt(plaintext: str, *, associated_data: bytes) -> str:
        return PLAIN_PREFIX + plaintext

    def decrypt(token: str, *, associated_data: bytes, label: str = "") -> str:
        return token.removeprefix(PLAIN_PREFIX)

    def no_audit(**kwargs: Any) -> None:
        return None

    with ExitStack() as stack:
        stack.enter_context(mock.patch("portal.crypto.fields.encrypt_text", encrypt))
        stack.enter_context(mock.patch("portal.crypto.fields.decrypt_text", decrypt))
        for target in ("messaging.services.audit_record", "messaging.selectors.audit_phi_read"):
            stack.enter_context(mock.patch(target, no_audit))
        yield


@contextmanager
def _shipped() -> Iterator[None]:
    yield


def _user(email: str, organization: Organization, role: Role, npi: str = "") -> User:
    user = User.objects.create_user(email=email, full_name=email.split("@")[0].title())
    Membership.objects.create(user=user, organization=organization, role=role, npi=npi)
    TOTP.activate(user, generate_totp_secret())
    return user


def _world(label: str) -> tuple[User, User, Thread]:
    """A practice, a clinic, five users and a thread of THREAD_MESSAGES messages."""
    practice = Organization.objects.create(name=f"Bench practice {label}", kind="practice")
    clinic = Organization.objects.create(name=f"Bench clinic {label}", kind="clinic")
    provider = _user(f"provider-{label}@bench.example", practice, Role.PROVIDER, "1234567893")
    _user(f"staff-{label}@bench.example", practice, Role.PRACTICE_STAFF)
    coordinator = _user(f"coordinator-{label}@bench.example", clinic, Role.COORDINATOR)
    _user(f"clinician-{label}@bench.example", clinic, Role.CLINICIAN)
    _user(f"admin-{label}@bench.example", clinic, Role.CLINIC_ADMIN)
    thread = services.thread_create(
        actor=provider, subject="Bench", body="First.", clinic_id=clinic.public_id
    )
    Message.objects.bulk_create(
        [
            Message(
                thread=thread,
                sequence=sequence,
                kind=MessageKind.USER,
                author=provider if sequence % 2 else coordinator,
                author_side="practice" if sequence % 2 else "clinic",
                body=f"Message {sequence}: " + "lorem ipsum dolor sit amet " * 8,
            )
            for sequence in range(2, THREAD_MESSAGES + 1)
        ],
        batch_size=500,
    )
    Thread.objects.filter(pk=thread.pk).update(last_sequence=THREAD_MESSAGES)
    return provider, coordinator, Thread.objects.get(pk=thread.pk)


def _check(status_code: int) -> None:
    if status_code != 200:
        raise RuntimeError(f"bench page answered {status_code}")


def _operations(provider: User, coordinator: User, thread: Thread) -> dict[str, Callable[[], Any]]:
    body = "Could the patient be seen this week? " * 6
    browser = Client()
    browser.force_login(coordinator)
    api = APIClient()
    api.force_authenticate(coordinator)
    page_path = f"/messages/{thread.public_id}/"
    api_path = f"/api/v1/threads/{thread.public_id}/messages/?page_size=50"
    return {
        SEND: lambda: services.message_send(actor=provider, thread=thread, body=body),
        PORTAL_PAGE: lambda: _check(browser.get(page_path).status_code),
        API_PAGE: lambda: _check(api.get(api_path).status_code),
    }


def messaging_benchmarks(*, rounds: int = 5, per_round: int = 20) -> list[Row]:
    """Mean microseconds per operation, shipped and plain, over interleaved rounds."""
    # One INFO line per send would drown the report.
    logging.getLogger("messaging").setLevel(logging.WARNING)
    with mock.patch("portal.notifications.services.enqueue_email_deliveries"):
        shipped_world = _world("shipped")
        with without_encryption_and_audit():
            plain_world = _world("plain")
        variants: dict[bool, tuple[Callable[[], Any], dict[str, Callable[[], Any]]]] = {
            True: (_shipped, _operations(*shipped_world)),
            False: (without_encryption_and_audit, _operations(*plain_world)),
        }
        totals = {
            (shipped, name): 0.0 for shipped in variants for name in (SEND, PORTAL_PAGE, API_PAGE)
        }
        for context, operations in variants.values():
            with context():
                for work in operations.values():  # warm up caches and query plans
                    work()
        for _ in range(rounds):
            for shipped, (context, operations) in variants.items():
                with context():
                    for name, work in operations.items():
                        start = time.perf_counter()
                        for _ in range(per_round):
                            work()
                        totals[(shipped, name)] += time.perf_counter() - start
    count = rounds * per_round
    return [
        (name, totals[(True, name)] / count * 1e6, totals[(False, name)] / count * 1e6)
        for name in (SEND, PORTAL_PAGE, API_PAGE)
    ]
