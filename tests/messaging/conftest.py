"""Fixtures for messaging: a referral thread and a general thread between the cast's practice A
and the clinic, helpers to send messages as a persona, and files to attach."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from messaging import services
from messaging.models import Message, Thread
from referrals.models import Referral, ReferralStatus
from tests.personas import Cast
from tests.referrals.factories import referral_in_state

Send = Callable[..., Message]

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
#: A message body that must never be found anywhere but in decrypted API output.
CANARY = "Canary-7f3a9 patient Zebulonia Quattlebaum reports worsening ideation"


def pdf_upload(name: str = "letter.pdf", data: bytes = PDF_BYTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def text_upload(
    name: str = "note.txt", text: str = "Lab results attached.\n"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/plain")


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Encrypted attachments go to a per-test folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def referral(cast: Cast) -> Referral:
    """A submitted referral of the cast's provider (visible to practice A and the clinic)."""
    return referral_in_state(cast, ReferralStatus.SUBMITTED)


@pytest.fixture
def referral_thread(referral: Referral) -> Thread:
    return services.referral_thread_ensure(referral=referral)


@pytest.fixture
def general_thread(cast: Cast) -> Thread:
    """A general thread the provider opened with the clinic (one message, by the provider)."""
    return services.thread_create(
        actor=cast.user("provider"), subject="Scheduling question", body="Opening message."
    )


@pytest.fixture
def send(cast: Cast) -> Send:
    def run(persona: str, thread: Thread, body: str = "Hello.", **kwargs: Any) -> Message:
        return services.message_send(
            actor=cast.user(persona),
            thread=Thread.objects.get(pk=thread.pk),
            body=body,
            **kwargs,
        )

    return run


def client_for(cast: Cast, persona: str) -> APIClient:
    client = APIClient()
    user = cast[persona].user
    if user is not None:
        client.force_authenticate(user)
    return client
