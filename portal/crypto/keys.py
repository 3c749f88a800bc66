"""The keys in force, built once from settings (never from SECRET_KEY)."""

from __future__ import annotations

import base64
from functools import cache

from django.conf import settings

from portal.crypto.keyring import Keyring


@cache
def keyring() -> Keyring:
    """The key-encryption keyring: every configured KEK, the active one wrapping new data keys."""
    return Keyring.from_config(
        settings.PORTAL_ENCRYPTION_KEYS, settings.PORTAL_ENCRYPTION_ACTIVE_KEY
    )


@cache
def blind_index_key() -> bytes:
    return base64.urlsafe_b64decode(settings.PORTAL_BLIND_INDEX_KEY + "==")


def reset() -> None:
    """Forget the cached keys (tests and rotation change the settings they come from)."""
    keyring.cache_clear()
    blind_index_key.cache_clear()
