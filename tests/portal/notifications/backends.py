"""A mail backend standing in for an SMTP server that fails on demand (the only thing mocked)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from django.core.mail import EmailMessage
from django.core.mail.backends import locmem


class FlakyBackend(locmem.EmailBackend):
    """Raises the queued errors one per send, then delivers to ``mail.outbox`` like locmem."""

    failures: ClassVar[list[BaseException]] = []
    calls: ClassVar[int] = 0

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        FlakyBackend.calls += 1
        if FlakyBackend.failures:
            raise FlakyBackend.failures.pop(0)
        return super().send_messages(email_messages)
