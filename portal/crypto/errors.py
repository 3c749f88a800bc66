"""Exceptions raised by ``portal.crypto``.

Messages never contain key material, plaintext or ciphertext. They may name a key id, which is
an operator-chosen label and not a secret.
"""

from __future__ import annotations

from typing import Final, Literal

DecryptionReason = Literal["malformed", "unknown_key", "authentication_failed"]

MALFORMED: Final = "malformed"
UNKNOWN_KEY: Final = "unknown_key"
AUTHENTICATION_FAILED: Final = "authentication_failed"

_REASONS: Final[frozenset[str]] = frozenset({MALFORMED, UNKNOWN_KEY, AUTHENTICATION_FAILED})

_DEFAULT_MESSAGES: Final[dict[str, str]] = {
    MALFORMED: "encrypted data is malformed or has an unsupported format version",
    UNKNOWN_KEY: "encrypted data names a key-encryption key that is not in the keyring",
    AUTHENTICATION_FAILED: "encrypted data failed authentication (tampered, moved or wrong key)",
}


class CryptoError(Exception):
    """Base class for every error raised by ``portal.crypto``."""


class KeyringError(CryptoError, ValueError):
    """The keyring or a key is misconfigured (bad id, wrong length, missing active key...)."""


class DecryptionError(CryptoError):
    """Decryption failed closed; nothing was returned.

    ``reason`` is one of ``"malformed"`` (cannot be parsed: bad base64, wrong version, truncated
    structure), ``"unknown_key"`` (the KEK id is not in the keyring) or ``"authentication_failed"``
    (AES-GCM rejected it: a flipped byte, a value moved to another row/field, a swapped header or
    a truncated/reordered stream). ``key_id`` is the KEK id named by the data when it could be
    read, for security-event logging.
    """

    reason: DecryptionReason
    key_id: str | None

    def __init__(
        self,
        reason: DecryptionReason,
        message: str | None = None,
        *,
        key_id: str | None = None,
    ) -> None:
        if reason not in _REASONS:
            raise ValueError(f"unknown decryption failure reason {reason!r}")
        self.reason = reason
        self.key_id = key_id
        super().__init__(message or _DEFAULT_MESSAGES[reason])

    def __repr__(self) -> str:
        return f"DecryptionError(reason={self.reason!r}, key_id={self.key_id!r})"
