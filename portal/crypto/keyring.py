"""Key-encryption keys (KEKs) and the keyring.

KEKs come from the environment or a file as a spec string::

    k2026a:<url-safe base64 of 32 bytes>,k2025b:<url-safe base64 of 32 bytes>

plus the id of the active KEK (the one new data keys are wrapped under). Older KEKs stay in the
spec until ``rotate_keys`` has re-wrapped everything under the active one. Key ids are
operator-chosen labels (``[A-Za-z0-9_-]{1,32}``); they are never derived from, or related to,
Django's ``SECRET_KEY``, and neither is the key material.

Nothing here ever puts key material in an exception message or a ``repr``, and keys refuse to be
pickled so they cannot leak into a cache or a task payload by accident.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Final, NoReturn

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.crypto.errors import KeyringError

__all__ = [
    "KEY_ID_PATTERN",
    "KEY_SIZE",
    "KeyEncryptionKey",
    "Keyring",
    "generate_key_spec",
    "is_valid_key_id",
]

KEY_SIZE: Final = 32
KEY_ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,32}"
_KEY_ID_RE: Final = re.compile(KEY_ID_PATTERN)
_SPEC_SEPARATOR_RE: Final = re.compile(r"[,\n]")


def is_valid_key_id(key_id: object) -> bool:
    """True when ``key_id`` is a ``str`` matching ``KEY_ID_PATTERN`` in full."""
    return isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id) is not None


def _describe(key_id: object) -> str:
    """A key id safe for an error message (an invalid one might be misplaced key material)."""
    return repr(key_id) if is_valid_key_id(key_id) else "<invalid key id>"


def _no_pickle(obj: object) -> NoReturn:
    raise TypeError(f"{type(obj).__name__} holds key material and must not be pickled")


class KeyEncryptionKey:
    """One AES-256 key-encryption key with its id. Immutable; ``repr`` hides the secret."""

    __slots__ = ("_aead", "_key_id", "_secret")

    _key_id: str
    _secret: bytes
    _aead: AESGCM

    def __init__(self, key_id: str, secret: bytes) -> None:
        if not is_valid_key_id(key_id):
            raise KeyringError(f"invalid key id: must match {KEY_ID_PATTERN}")
        if not isinstance(secret, bytes | bytearray | memoryview):
            raise KeyringError(f"key {key_id!r}: secret must be bytes")
        secret = bytes(secret)
        if len(secret) != KEY_SIZE:
            raise KeyringError(
                f"key {key_id!r}: secret must be exactly {KEY_SIZE} bytes (got {len(secret)})"
            )
        object.__setattr__(self, "_key_id", key_id)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_aead", AESGCM(secret))

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def secret(self) -> bytes:
        return self._secret

    @property
    def aead(self) -> AESGCM:
        """The AES-GCM primitive for this key (built once)."""
        return self._aead

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("KeyEncryptionKey is immutable")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(key_id={self._key_id!r}, secret=<redacted>)"

    def __reduce__(self) -> NoReturn:
        _no_pickle(self)

    def __copy__(self) -> KeyEncryptionKey:
        return self

    def __deepcopy__(self, memo: object) -> KeyEncryptionKey:
        return self


class Keyring:
    """The KEKs the application may use, and which one wraps new data keys.

    ``keys`` maps key id to 32 raw bytes. Every key stays usable for unwrapping; only the active
    one is used for wrapping. Two ids with identical key material are refused (a copy-paste slip
    that would make rotation meaningless).
    """

    __slots__ = ("_active", "_keys")

    _keys: dict[str, KeyEncryptionKey]
    _active: KeyEncryptionKey

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if not isinstance(keys, Mapping) or not keys:
            raise KeyringError("the keyring needs at least one key")
        built: dict[str, KeyEncryptionKey] = {}
        seen: dict[bytes, str] = {}
        for key_id, secret in keys.items():
            kek = KeyEncryptionKey(key_id, secret)
            if kek.secret in seen:
                raise KeyringError(
                    f"keys {seen[kek.secret]!r} and {key_id!r} have identical key material"
                )
            seen[kek.secret] = key_id
            built[key_id] = kek
        if not is_valid_key_id(active_key_id):
            raise KeyringError(f"the active key id is invalid: must match {KEY_ID_PATTERN}")
        if active_key_id not in built:
            raise KeyringError(f"the active key id {active_key_id!r} is not in the keyring")
        object.__setattr__(self, "_keys", built)
        object.__setattr__(self, "_active", built[active_key_id])

    @classmethod
    def from_config(cls, spec: str, active: str) -> Keyring:
        """Parse ``"id:base64key,id:base64key"`` (commas or newlines between entries).

        Key material is URL-safe base64 (the standard ``+/`` alphabet is accepted too), with
        or without ``=`` padding, and must decode to exactly 32 bytes. Whitespace around entries
        and blank entries are ignored. Errors name the offending key id (or the entry's position
        when the id itself is unusable) and never include key material.
        """
        if not isinstance(spec, str):
            raise KeyringError("the key spec must be a string")
        keys: dict[str, bytes] = {}
        for position, raw_entry in enumerate(_SPEC_SEPARATOR_RE.split(spec), start=1):
            entry = raw_entry.strip()
            if not entry:
                continue
            key_id, separator, material = entry.partition(":")
            key_id, material = key_id.strip(), material.strip()
            if not separator:
                raise KeyringError(
                    f"key spec entry #{position} is not of the form '<key id>:<base64 key>'"
                )
            if not is_valid_key_id(key_id):
                raise KeyringError(
                    f"key spec entry #{position} has an invalid key id: must match {KEY_ID_PATTERN}"
                )
            if key_id in keys:
                raise KeyringError(f"key {key_id!r} appears more than once in the key spec")
            keys[key_id] = _decode_key_material(key_id, material)
        if not keys:
            raise KeyringError("the key spec contains no keys")
        return cls(keys, active)

    @property
    def active(self) -> KeyEncryptionKey:
        return self._active

    @property
    def active_key_id(self) -> str:
        return self._active.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def get(self, key_id: str) -> KeyEncryptionKey | None:
        """The KEK with this id, or ``None``."""
        return self._keys.get(key_id)

    def __getitem__(self, key_id: str) -> KeyEncryptionKey:
        kek = self._keys.get(key_id)
        if kek is None:
            raise KeyringError(f"key {_describe(key_id)} is not in the keyring")
        return kek

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Keyring is immutable")

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r}, active_key_id={self.active_key_id!r})"

    def __reduce__(self) -> NoReturn:
        _no_pickle(self)

    def __copy__(self) -> Keyring:
        return self

    def __deepcopy__(self, memo: object) -> Keyring:
        return self


def _decode_key_material(key_id: str, material: str) -> bytes:
    text = material.rstrip("=").replace("+", "-").replace("/", "_")
    invalid = KeyringError(f"key {key_id!r}: key material is not valid base64")
    if not text or len(text) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise invalid
    try:
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(secret) != KEY_SIZE:
        raise KeyringError(
            f"key {key_id!r}: key material must decode to exactly {KEY_SIZE} bytes "
            f"(got {len(secret)})"
        )
    return secret


def generate_key_spec(key_id: str) -> str:
    """A fresh ``"<key_id>:<url-safe base64 of 32 random bytes>"`` entry for the key spec."""
    if not is_valid_key_id(key_id):
        raise KeyringError(f"invalid key id: must match {KEY_ID_PATTERN}")
    secret = AESGCM.generate_key(bit_length=256)
    return f"{key_id}:{base64.urlsafe_b64encode(secret).decode('ascii')}"
