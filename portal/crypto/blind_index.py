"""Blind indexes: keyed HMAC-SHA256 digests for equality look-ups on encrypted fields.

The key must be its own secret (not a KEK, not ``SECRET_KEY``), at least 32 bytes. Anyone holding
it can brute-force low-entropy inputs (names, birth dates), so it lives with the KEKs, outside the
database. Changing it means recomputing every index from the decrypted values. Equal inputs give
equal digests, which reveals duplicates to a database reader; that is the price of the look-up.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import unicodedata
from typing import Final

from portal.crypto._encoding import length_prefixed, require_bytes

__all__ = ["MIN_KEY_SIZE", "blind_index", "normalise", "patient_blind_index"]

MIN_KEY_SIZE: Final = 32
_DOMAIN: Final = b"portal.crypto/blind-index/v1"
_WHITESPACE_RE: Final = re.compile(r"\s+")
_ISO_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PATIENT_PURPOSE: Final = "patient:given,family,birth_date"


def normalise(value: str) -> str:
    """NFKC, case-fold (then NFKC again, as case folding can denormalise), collapse runs of
    whitespace to one space and strip. ``"  José  "``, ``"JOSÉ"`` and ``"jose\\u0301"`` agree.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return _WHITESPACE_RE.sub(" ", folded).strip()


def blind_index(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 (hex) of the normalised ``parts``, each length-prefixed so part boundaries
    are unambiguous (``("ab", "c")`` differs from ``("a", "bc")``)."""
    key = require_bytes("key", key)
    if len(key) < MIN_KEY_SIZE:
        raise ValueError(f"a blind index key must be at least {MIN_KEY_SIZE} bytes")
    if not parts:
        raise ValueError("a blind index needs at least one part")
    encoded = [normalise(part).encode("utf-8") for part in parts]
    message = _DOMAIN + len(encoded).to_bytes(4, "big") + length_prefixed(*encoded)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def patient_blind_index(key: bytes, given_name: str, family_name: str, birth_date_iso: str) -> str:
    """Blind index for finding a patient by given name, family name and ``YYYY-MM-DD`` birth date.

    The purpose label is part of the digest, so it never equals an index built for another
    purpose from the same strings. Error messages never echo the (PHI) inputs.
    """
    if not isinstance(birth_date_iso, str):
        raise TypeError("birth_date_iso must be str")
    birth_date = birth_date_iso.strip()
    if not _ISO_DATE_RE.fullmatch(birth_date):
        raise ValueError("birth_date_iso must be a YYYY-MM-DD date")
    try:
        datetime.date.fromisoformat(birth_date)
    except ValueError:
        raise ValueError("birth_date_iso must be a valid YYYY-MM-DD date") from None
    return blind_index(key, _PATIENT_PURPOSE, given_name, family_name, birth_date)
