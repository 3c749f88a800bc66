"""The HMAC chain: canonical serialisation of an event and the hash of one link.

The key (settings.PORTAL_AUDIT_HMAC_KEY, urlsafe base64 of at least 32 bytes) lives outside the
database, so someone who can rewrite audit rows cannot compute matching hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal.audit.models import AuditChainHead, AuditEvent

CHAIN_VERSION = 1
MINIMUM_KEY_BYTES = 32


def chain_key() -> bytes:
    """The audit HMAC key. Read on each call: it is cheap, and tests may override the setting."""
    encoded = str(settings.PORTAL_AUDIT_HMAC_KEY)
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as error:
        raise ImproperlyConfigured("PORTAL_AUDIT_HMAC_KEY is not urlsafe base64.") from error
    if len(key) < MINIMUM_KEY_BYTES:
        raise ImproperlyConfigured(
            f"PORTAL_AUDIT_HMAC_KEY must decode to at least {MINIMUM_KEY_BYTES} bytes."
        )
    return key


def event_content(event: AuditEvent, *, sequence: int | None = None) -> dict[str, Any]:
    """Everything an event says, as plain JSON values (``sequence`` may be substituted to test
    whether the content was moved from another position)."""
    return {
        "sequence": event.sequence if sequence is None else sequence,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "ip": event.ip,
        "details": event.details,
    }


def _mac(key: bytes, payload: dict[str, Any]) -> str:
    # Sorted keys, no whitespace and raw UTF-8 make the serialisation canonical; details hold
    # only strings, integers, booleans and null, so there is no float formatting to vary.
    message = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def link_hash(
    key: bytes,
    *,
    position: int,
    previous_sequence: int | None,
    previous_hash: str,
    content: dict[str, Any],
) -> str:
    return _mac(
        key,
        {
            "v": CHAIN_VERSION,
            "position": position,
            "previous_sequence": previous_sequence,
            "previous_hash": previous_hash,
            "event": content,
        },
    )


def head_mac(key: bytes, head: AuditChainHead) -> str:
    """Binds the head's record of the chain's end, so cutting events off the end shows."""
    return _mac(
        key,
        {
            "v": CHAIN_VERSION,
            "head_position": head.position,
            "last_sequence": head.last_sequence,
            "chain_hash": head.chain_hash,
        },
    )


def same_hash(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode("ascii", "replace"), right.encode("ascii", "replace"))
