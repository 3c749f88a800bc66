"""Strict encoding helpers shared by the crypto modules (private)."""

from __future__ import annotations

import base64
import binascii
import string
from typing import Final

_ALPHABET: Final = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding (text-safe, no ``.`` so it can sit in a dotted token)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode ``b64encode`` output strictly; raise ``ValueError`` on anything else.

    Only the canonical encoding is accepted (URL-safe alphabet, no padding, no whitespace, no
    non-zero trailing bits), so every textual change to a token changes the decoded bytes and is
    caught by authentication rather than silently ignored.
    """
    if (
        not isinstance(text, str)
        or not text.isascii()
        or len(text) % 4 == 1
        or "+" in text
        or "/" in text
        or "=" in text
    ):
        raise ValueError("invalid base64")
    try:
        data = binascii.a2b_base64(
            (text + "=" * (-len(text) % 4)).encode("ascii").translate(_TO_STANDARD),
            strict_mode=True,
        )
    except binascii.Error:
        raise ValueError("invalid base64") from None
    remainder = len(text) % 4
    if remainder and _ALPHABET.index(text[-1]) & (0x0F if remainder == 2 else 0x03):
        raise ValueError("non-canonical base64")
    return data


def length_prefixed(*parts: bytes) -> bytes:
    """Concatenate ``parts`` each preceded by its 4-byte big-endian length (unambiguous)."""
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def require_bytes(name: str, value: object) -> bytes:
    """Return ``value`` as ``bytes``; refuse ``str`` and other types with ``TypeError``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
