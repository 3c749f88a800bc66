"""keys.py: the keyring and blind-index key from settings; patient_blind_index with the real key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.crypto import keys
from portal.crypto.blind_index import patient_blind_index
from portal.crypto.keys import blind_index_key, keyring

from .conftest import UseKeys
from .helpers import K1, K3, b64

pytestmark = pytest.mark.usefixtures("use_keys")


@pytest.fixture
def blind_key(settings: Any) -> Any:
    def apply(value: str) -> None:
        settings.PORTAL_BLIND_INDEX_KEY = value
        keys.reset()

    yield apply
    keys.reset()


def test_keyring_follows_the_settings(use_keys: UseKeys) -> None:
    assert (keyring().key_ids, keyring().active_key_id) == (("k1",), "k1")

    use_keys("k1", "k2", active="k2")

    assert (keyring().key_ids, keyring().active_key_id) == (("k1", "k2"), "k2")


@pytest.mark.parametrize(
    "encode",
    [
        lambda key: base64.urlsafe_b64encode(key).decode(),  # as settings.py generates it
        lambda key: base64.urlsafe_b64encode(key).decode().rstrip("="),
        lambda key: base64.b64encode(key).decode(),
        lambda key: f"  {base64.urlsafe_b64encode(key).decode()}\n",
    ],
)
def test_blind_index_key_accepts_base64_forms(blind_key: Any, encode: Any) -> None:
    blind_key(encode(K3))

    assert blind_index_key() == K3


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"short").decode(),
        base64.urlsafe_b64encode(K3).decode()[:-4] + "*&^%",
    ],
)
def test_a_malformed_or_short_blind_index_key_stops_without_echoing_it(
    blind_key: Any, value: str
) -> None:
    blind_key(value)

    with pytest.raises(ImproperlyConfigured, match="PORTAL_BLIND_INDEX_KEY must be") as excinfo:
        blind_index_key()
    assert value.strip() == "" or value.strip() not in str(excinfo.value)


def test_the_blind_index_key_must_not_be_a_kek(blind_key: Any) -> None:
    blind_key(b64(K1))  # K1 is the active KEK

    with pytest.raises(ImproperlyConfigured, match="its own key"):
        blind_index_key()


def test_patient_blind_index_with_the_configured_key(blind_key: Any, settings: Any) -> None:
    blind_key(b64(K3))
    digest = patient_blind_index(blind_index_key(), "Zoë", "Ødegaard", "1980-02-29")

    assert len(digest) == 64
    assert digest == patient_blind_index(blind_index_key(), "  ZOË ", "ødegaard", "1980-02-29")
    assert digest != patient_blind_index(blind_index_key(), "Zoë", "Ødegaard", "1980-03-01")

    blind_key(base64.urlsafe_b64encode(bytes(range(50, 82))).decode())
    assert patient_blind_index(blind_index_key(), "Zoë", "Ødegaard", "1980-02-29") != digest


def test_the_development_key_from_settings_works(settings: Any) -> None:
    # Whatever settings.py generated or read (development) decodes to a usable key.
    keys.reset()
    key = blind_index_key()

    assert len(key) >= 32
    assert len(patient_blind_index(key, "A", "B", "2000-01-01")) == 64


def test_no_crypto_module_reads_secret_key() -> None:
    package = Path(keys.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "settings.SECRET_KEY" not in text, path
        assert '"SECRET_KEY"' not in text, path
