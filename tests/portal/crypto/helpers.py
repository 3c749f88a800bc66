"""Shared fixtures-as-functions for the crypto tests (no conftest, no Django)."""

from __future__ import annotations

import base64

from portal.crypto.envelope import associated_data
from portal.crypto.keyring import Keyring

# Fixed test keys: distinct, obviously not production material.
K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K3 = bytes(range(200, 232))

CANARY = "CANARY-PHI-Zoë-Ødegaard-☃-7f3a91".encode()


def b64(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode("ascii")


def keyring_k1() -> Keyring:
    return Keyring({"k1": K1}, "k1")


def keyring_k1_k2_active_k2() -> Keyring:
    return Keyring({"k1": K1, "k2": K2}, "k2")


def keyring_k2_only() -> Keyring:
    return Keyring({"k2": K2}, "k2")


def ad_for(row: str = "row-1", field: str = "notes") -> bytes:
    return associated_data("referrals", "patient", field, row)
