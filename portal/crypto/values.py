"""Encrypting single values with the configured keyring, failing closed with a security event."""

from __future__ import annotations

import logging

from portal.audit.services import security_event_record
from portal.crypto.envelope import decrypt_value, encrypt_value
from portal.crypto.errors import DecryptionError
from portal.crypto.keys import keyring

security_logger = logging.getLogger("portal.security")


def encrypt_text(plaintext: str, *, associated_data: bytes) -> str:
    return encrypt_value(keyring(), plaintext.encode("utf-8"), associated_data=associated_data)


def report_decryption_failure(error: DecryptionError, *, label: str = "") -> None:
    """Record a failed decryption as a security event (no plaintext or ciphertext in it).

    The one place every decryption failure goes through: values, model fields and files.
    ``label`` names what failed (``app.model.field:<public id>``, ``file:<purpose>/<name>``).
    """
    security_logger.error(
        "security.decryption_failed",
        extra={"reason": error.reason, "key_id": error.key_id, "label": label},
    )
    # Also an audit row, kept even when the surrounding transaction rolls back.
    security_event_record(
        action="security.decryption_failed",
        details={"reason": error.reason, "key_id": error.key_id, "label": label[:200]},
    )


def decrypt_text(token: str, *, associated_data: bytes, label: str = "") -> str:
    """Decrypt ``token`` or raise DecryptionError after logging a security event (no data in it)."""
    try:
        return decrypt_value(keyring(), token, associated_data=associated_data).decode("utf-8")
    except DecryptionError as error:
        report_decryption_failure(error, label=label)
        raise
