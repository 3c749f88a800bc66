"""Envelope encryption of individual values with AES-256-GCM.

Every value gets its own random 256-bit data key (DEK). The DEK encrypts the value; a
key-encryption key (KEK) from the keyring wraps the DEK. The wrapped DEK travels inside the value
token, so one database TEXT column is self-contained, and key rotation only re-wraps the DEK: the
value's nonce and ciphertext are carried over byte for byte.

Value token (ASCII, five dot-separated fields, base64 is URL-safe without padding)::

    v1.<kek_id>.<W>.<b64(nonce[12])>.<b64(ciphertext || tag[16])>
    W = b64(wrap_nonce[12] || wrapped_dek[32] || wrap_tag[16])     (80 characters)

Wrapped DEK string (``wrap_dek`` / ``unwrap_dek`` / ``rewrap``)::

    w1.<kek_id>.<W>

Authenticated data:

- DEK wrap:  ``"portal.crypto/dek-wrap/v1"`` + length-prefixed(role, kek_id, context). For values
  the role is ``"value-dek"`` and the context is the value's associated data, so a wrapped DEK
  only unwraps for the row/field it was made for and under the KEK id it names.
- value data: ``"portal.crypto/value/v1"`` + length-prefixed(associated_data). It does not cover
  the KEK id or the wrapped DEK, which is what lets rotation re-wrap without re-encrypting.

Every failure raises ``DecryptionError`` with ``reason`` in ``malformed`` / ``unknown_key`` /
``authentication_failed``; nothing is ever returned on failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.crypto._encoding import b64decode, b64encode, length_prefixed, require_bytes
from portal.crypto.errors import (
    AUTHENTICATION_FAILED,
    MALFORMED,
    UNKNOWN_KEY,
    CryptoError,
    DecryptionError,
    DecryptionReason,
    KeyringError,
)
from portal.crypto.keyring import KeyEncryptionKey, Keyring, is_valid_key_id

__all__ = [
    "DEK_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "VALUE_VERSION",
    "WRAP_VERSION",
    "CryptoError",
    "DecryptionError",
    "DecryptionReason",
    "KeyringError",
    "WrappedKey",
    "associated_data",
    "decrypt_value",
    "encrypt_value",
    "generate_dek",
    "reencrypt_value",
    "rewrap",
    "rewrap_value",
    "token_key_id",
    "token_wrapped_dek",
    "unwrap_dek",
    "wrap_dek",
]

VALUE_VERSION: Final = "v1"
WRAP_VERSION: Final = "w1"
NONCE_SIZE: Final = 12
DEK_SIZE: Final = 32
TAG_SIZE: Final = 16
WRAPPED_DEK_SIZE: Final = NONCE_SIZE + DEK_SIZE + TAG_SIZE

_WRAP_DOMAIN: Final = b"portal.crypto/dek-wrap/v1"
_VALUE_DOMAIN: Final = b"portal.crypto/value/v1"
_AD_DOMAIN: Final = b"portal.crypto/ad/v1"
ROLE_VALUE_DEK: Final = b"value-dek"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A DEK sealed with AES-256-GCM under the KEK ``key_id``."""

    key_id: str
    nonce: bytes
    ciphertext: bytes  # wrapped DEK followed by the 16-byte tag

    def __post_init__(self) -> None:
        if not is_valid_key_id(self.key_id):
            raise ValueError("invalid key id")
        if len(self.nonce) != NONCE_SIZE or len(self.ciphertext) != DEK_SIZE + TAG_SIZE:
            raise ValueError("wrong wrapped key size")

    @property
    def body(self) -> bytes:
        """``nonce || ciphertext`` (60 bytes): what the token carries after the KEK id."""
        return self.nonce + self.ciphertext

    def to_str(self) -> str:
        return f"{WRAP_VERSION}.{self.key_id}.{b64encode(self.body)}"

    @classmethod
    def from_body(cls, key_id: str, body: bytes) -> WrappedKey:
        """Rebuild from a KEK id and a 60-byte body; ``DecryptionError("malformed")`` if bad."""
        if not is_valid_key_id(key_id) or len(body) != WRAPPED_DEK_SIZE:
            raise DecryptionError(MALFORMED)
        return cls(key_id, body[:NONCE_SIZE], body[NONCE_SIZE:])

    @classmethod
    def from_str(cls, text: str) -> WrappedKey:
        """Parse ``to_str`` output; ``DecryptionError("malformed")`` for anything else."""
        if not isinstance(text, str):
            raise DecryptionError(MALFORMED)
        parts = text.split(".")
        if len(parts) != 3 or parts[0] != WRAP_VERSION:
            raise DecryptionError(MALFORMED)
        return cls.from_body(parts[1], _b64(parts[2]))

    def __repr__(self) -> str:
        return f"WrappedKey(key_id={self.key_id!r})"


def _b64(text: str) -> bytes:
    try:
        return b64decode(text)
    except ValueError:
        raise DecryptionError(MALFORMED) from None


def _fail(reason: DecryptionReason, key_id: str | None = None) -> DecryptionError:
    return DecryptionError(reason, key_id=key_id)


def generate_dek() -> bytes:
    """A fresh random 256-bit data key (``os.urandom`` via ``AESGCM.generate_key``)."""
    return AESGCM.generate_key(bit_length=256)


def associated_data(app: str, model: str, field: str, row: str) -> bytes:
    """Canonical associated data binding a value to its app, model, field and row.

    Each part is UTF-8 encoded and length-prefixed after a version label, so ``("a", "bc")`` and
    ``("ab", "c")`` give different bytes. Parts are used exactly as given (``model`` is not
    case-folded, ``row`` must already be a string: pass ``str(pk)`` or the public UUID).
    ``row`` must be known before the value is encrypted, so use an id assigned in Python (a
    UUID default) rather than a database-generated primary key.
    """
    encoded: list[bytes] = []
    for name, value in (("app", app), ("model", model), ("field", field), ("row", row)):
        if not isinstance(value, str):
            raise TypeError(
                f"associated data part {name!r} must be str, not {type(value).__name__}"
            )
        if not value:
            raise ValueError(f"associated data part {name!r} must not be empty")
        encoded.append(value.encode("utf-8"))
    return _AD_DOMAIN + length_prefixed(*encoded)


# --- DEK wrapping -----------------------------------------------------------------------------


def _wrap_aad(role: bytes, key_id: str, context: bytes) -> bytes:
    return _WRAP_DOMAIN + length_prefixed(role, key_id.encode("ascii"), context)


def _wrap_with(kek: KeyEncryptionKey, dek: bytes, *, role: bytes, context: bytes) -> WrappedKey:
    if len(dek) != DEK_SIZE:
        raise CryptoError(f"a data key must be exactly {DEK_SIZE} bytes")
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = kek.aead.encrypt(nonce, dek, _wrap_aad(role, kek.key_id, context))
    return WrappedKey(kek.key_id, nonce, ciphertext)


def _unwrap_with(keyring: Keyring, wrapped: WrappedKey, *, role: bytes, context: bytes) -> bytes:
    kek = keyring.get(wrapped.key_id)
    if kek is None:
        raise _fail(UNKNOWN_KEY, wrapped.key_id)
    try:
        dek = kek.aead.decrypt(
            wrapped.nonce, wrapped.ciphertext, _wrap_aad(role, kek.key_id, context)
        )
    except InvalidTag:
        raise _fail(AUTHENTICATION_FAILED, wrapped.key_id) from None
    if len(dek) != DEK_SIZE:  # pragma: no cover - sizes are checked when parsing
        raise _fail(AUTHENTICATION_FAILED, wrapped.key_id)
    return dek


def wrap_dek(keyring: Keyring, dek: bytes, *, context: bytes) -> str:
    """Wrap ``dek`` under the active KEK, bound to ``context``; returns a ``w1.`` string.

    With ``context`` equal to a value's associated data the result is accepted by
    ``encrypt_value(..., wrapped_dek=...)`` for that associated data.
    """
    dek = require_bytes("dek", dek)
    context = require_bytes("context", context)
    return _wrap_with(keyring.active, dek, role=ROLE_VALUE_DEK, context=context).to_str()


def unwrap_dek(keyring: Keyring, wrapped: str, *, context: bytes) -> bytes:
    """Recover the DEK from a ``w1.`` string; ``DecryptionError`` on any failure."""
    context = require_bytes("context", context)
    return _unwrap_with(keyring, WrappedKey.from_str(wrapped), role=ROLE_VALUE_DEK, context=context)


def rewrap(keyring: Keyring, wrapped: str, *, context: bytes) -> str:
    """Re-wrap under the active KEK; returns ``wrapped`` itself when already on it (no work)."""
    context = require_bytes("context", context)
    parsed = WrappedKey.from_str(wrapped)
    if parsed.key_id == keyring.active_key_id:
        return wrapped
    dek = _unwrap_with(keyring, parsed, role=ROLE_VALUE_DEK, context=context)
    return _wrap_with(keyring.active, dek, role=ROLE_VALUE_DEK, context=context).to_str()


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ValueToken:
    wrapped: WrappedKey
    nonce: bytes
    ciphertext: bytes

    def format(self) -> str:
        return ".".join(
            (
                VALUE_VERSION,
                self.wrapped.key_id,
                b64encode(self.wrapped.body),
                b64encode(self.nonce),
                b64encode(self.ciphertext),
            )
        )


def _parse_token(token: str) -> _ValueToken:
    if not isinstance(token, str):
        raise DecryptionError(MALFORMED)
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != VALUE_VERSION:
        raise DecryptionError(MALFORMED)
    _, key_id, wrapped_b64, nonce_b64, ciphertext_b64 = parts
    wrapped = WrappedKey.from_body(key_id, _b64(wrapped_b64))
    nonce = _b64(nonce_b64)
    ciphertext = _b64(ciphertext_b64)
    if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
        raise _fail(MALFORMED, key_id)
    return _ValueToken(wrapped, nonce, ciphertext)


def _value_aad(associated_data: bytes) -> bytes:
    return _VALUE_DOMAIN + length_prefixed(associated_data)


def encrypt_value(
    keyring: Keyring,
    plaintext: bytes,
    *,
    associated_data: bytes,
    wrapped_dek: str | None = None,
) -> str:
    """Encrypt ``plaintext`` into a ``v1.`` token bound to ``associated_data``.

    A fresh DEK is generated unless ``wrapped_dek`` is given (a ``w1.`` string made for the same
    associated data, e.g. ``token_wrapped_dek(old_token)``); a DEK wrapped under an older KEK is
    re-wrapped under the active one, so new tokens always name the active KEK. The nonce is always
    fresh and random.
    """
    plaintext = require_bytes("plaintext", plaintext)
    ad = require_bytes("associated_data", associated_data)
    active = keyring.active
    if wrapped_dek is None:
        dek = generate_dek()
        wrapped = _wrap_with(active, dek, role=ROLE_VALUE_DEK, context=ad)
    else:
        wrapped = WrappedKey.from_str(wrapped_dek)
        dek = _unwrap_with(keyring, wrapped, role=ROLE_VALUE_DEK, context=ad)
        if wrapped.key_id != active.key_id:
            wrapped = _wrap_with(active, dek, role=ROLE_VALUE_DEK, context=ad)
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext, _value_aad(ad))
    return _ValueToken(wrapped, nonce, ciphertext).format()


def decrypt_value(keyring: Keyring, token: str, *, associated_data: bytes) -> bytes:
    """Decrypt a ``v1.`` token; raise ``DecryptionError`` on any failure, never return junk."""
    ad = require_bytes("associated_data", associated_data)
    parsed = _parse_token(token)
    dek = _unwrap_with(keyring, parsed.wrapped, role=ROLE_VALUE_DEK, context=ad)
    try:
        return AESGCM(dek).decrypt(parsed.nonce, parsed.ciphertext, _value_aad(ad))
    except InvalidTag:
        raise _fail(AUTHENTICATION_FAILED, parsed.wrapped.key_id) from None


def rewrap_value(keyring: Keyring, token: str, *, associated_data: bytes) -> str:
    """Re-wrap the token's DEK under the active KEK without touching the value ciphertext.

    Returns ``token`` itself (no cryptographic work) when it already names the active KEK, so a
    rerun is a no-op. ``associated_data`` is required because the DEK wrap is bound to it: a
    token moved to another row cannot even be re-wrapped. This does not authenticate the value
    ciphertext (that needs the plaintext to be decrypted); use ``decrypt_value`` to verify.
    """
    ad = require_bytes("associated_data", associated_data)
    parsed = _parse_token(token)
    if parsed.wrapped.key_id == keyring.active_key_id:
        return token
    dek = _unwrap_with(keyring, parsed.wrapped, role=ROLE_VALUE_DEK, context=ad)
    wrapped = _wrap_with(keyring.active, dek, role=ROLE_VALUE_DEK, context=ad)
    return _ValueToken(wrapped, parsed.nonce, parsed.ciphertext).format()


def reencrypt_value(
    keyring: Keyring,
    token: str,
    *,
    associated_data: bytes,
    new_associated_data: bytes | None = None,
) -> str:
    """Decrypt and encrypt again with a fresh DEK and nonce under the active KEK.

    ``new_associated_data`` moves the value to another binding (e.g. a copied row); by default
    the binding is kept.
    """
    plaintext = decrypt_value(keyring, token, associated_data=associated_data)
    target = associated_data if new_associated_data is None else new_associated_data
    return encrypt_value(keyring, plaintext, associated_data=target)


def token_key_id(token: str) -> str:
    """The KEK id a token names (structure checked, nothing decrypted)."""
    return _parse_token(token).wrapped.key_id


def token_wrapped_dek(token: str) -> str:
    """The token's wrapped DEK as a ``w1.`` string (for ``encrypt_value(wrapped_dek=...)``)."""
    return _parse_token(token).wrapped.to_str()
