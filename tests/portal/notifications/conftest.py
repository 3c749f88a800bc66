from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from portal.notifications.models import Notification
from portal.notifications.services import email_digests_create, notify
from tests.portal.notifications.backends import FlakyBackend

Notify = Callable[..., list[Notification]]


def referral_link() -> str:
    return f"/referrals/{uuid.uuid4()}/"


@pytest.fixture
def notify_committed(django_capture_on_commit_callbacks: Callable[..., Any]) -> Notify:
    """``notify`` inside a transaction that commits, running the on-commit enqueue (eagerly)."""

    def run(**kwargs: Any) -> list[Notification]:
        kwargs.setdefault("event", "referral.accepted")
        kwargs.setdefault("reference", "R-2026-00042")
        kwargs.setdefault("link", referral_link())
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            return notify(**kwargs)

    return run


@pytest.fixture
def create_digests(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[..., list[int]]:
    """The daily digest job's service, with its on-commit sends run (eagerly)."""

    def run(**kwargs: Any) -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            return email_digests_create(**kwargs)

    return run


@pytest.fixture
def flaky_mail(settings: Any) -> Iterator[type[FlakyBackend]]:
    settings.EMAIL_BACKEND = "tests.portal.notifications.backends.FlakyBackend"
    FlakyBackend.failures = []
    FlakyBackend.calls = 0
    yield FlakyBackend
    FlakyBackend.failures = []
    FlakyBackend.calls = 0
