"""The keys in force, built once from settings (never from SECRET_KEY).

- ``keyring()``: the key-encryption keys from ``PORTAL_ENCRYPTION_KEYS`` (``id:base64,...``)
  with ``PORTAL_ENCRYPTION_ACTIVE_KEY`` wrapping new data keys.
- ``blind_index_key()``: the HMAC key of the blind indexes, ``PORTAL_BLIND_INDEX_KEY``
  (base64 of at least 32 bytes), which must differ from every KEK.

Both are cached for the life of the process; ``reset()`` forgets them after the settings change
(tests, and ``rotate_keys`` run in a process that changed them).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from functools import cache
from typing import Final

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal.crypto.blind_index import MIN_KEY_SIZE
from portal.crypto.keyring import Keyring

_BASE64_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


@cache
def keyring() -> Keyring:
    """The key-encryption keyring: every configured KEK, the active one wrapping new data keys."""
    return Keyring.from_config(
        settings.PORTAL_ENCRYPTION_KEYS, settings.PORTAL_ENCRYPTION_ACTIVE_KEY
    )


def _decode_blind_index_key(text: object) -> bytes:
    """Strict base64 (URL-safe or standard, padding optional); never echoes the value."""
    invalid = ImproperlyConfigured(
        f"PORTAL_BLIND_INDEX_KEY must be base64 of at least {MIN_KEY_SIZE} random bytes."
    )
    if not isinstance(text, str):
        raise invalid
    material = text.strip().rstrip("=").replace("+", "-").replace("/", "_")
    if not _BASE64_RE.fullmatch(material) or len(material) % 4 == 1:
        raise invalid
    try:
        key = base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(key) < MIN_KEY_SIZE:
        raise invalid
    return key


@cache
def blind_index_key() -> bytes:
    """The blind-index HMAC key; ``ImproperlyConfigured`` if malformed, short or a KEK's twin."""
    key = _decode_blind_index_key(settings.PORTAL_BLIND_INDEX_KEY)
    ring = keyring()
    if any(hmac.compare_digest(key, ring[key_id].secret) for key_id in ring):
        raise ImproperlyConfigured(
            "PORTAL_BLIND_INDEX_KEY must be its own key, not one of PORTAL_ENCRYPTION_KEYS."
        )
    return key


def reset() -> None:
    """Forget the cached keys (tests and rotation change the settings they come from)."""
    keyring.cache_clear()
    blind_index_key.cache_clear()
