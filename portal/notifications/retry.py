"""When an outbox e-mail is tried again, and which failures are worth trying again."""

from __future__ import annotations

import smtplib
from datetime import timedelta

# The first try and five retries; after that a transient failure is final.
MAX_ATTEMPTS = 6
RETRY_BACKOFF_SECONDS = 60
RETRY_BACKOFF_MAX_SECONDS = 900


def retry_delay(attempts: int) -> timedelta:
    """60 s, 120 s, 240 s, ... at most 15 minutes: the same curve as the task's autoretry."""
    exponent = max(attempts - 1, 0)
    return timedelta(seconds=min(RETRY_BACKOFF_SECONDS * 2**exponent, RETRY_BACKOFF_MAX_SECONDS))


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed: 4xx replies, dropped connections, network errors.

    5xx replies (recipient refused, message rejected) are permanent. Every SMTP error is an
    OSError, so the SMTP cases are decided before the network ones.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return not 500 <= error.smtp_code < 600
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    return isinstance(error, OSError)
