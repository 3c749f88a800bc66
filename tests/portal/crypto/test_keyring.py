from __future__ import annotations

import ast
import base64
import copy
import pickle
from pathlib import Path

import pytest

from portal.crypto.errors import CryptoError, KeyringError
from portal.crypto.keyring import KeyEncryptionKey, Keyring, generate_key_spec, is_valid_key_id

from .helpers import K1, K2, K3, b64

CRYPTO_DIR = Path(__file__).resolve().parents[3] / "portal" / "crypto"


# --- KeyEncryptionKey -----------------------------------------------------------------------


def test_kek_accepts_exactly_32_bytes() -> None:
    kek = KeyEncryptionKey("k2026a", K1)
    assert kek.key_id == "k2026a"
    assert kek.secret == K1


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_kek_rejects_other_sizes(size: int) -> None:
    with pytest.raises(KeyringError, match=rf"exactly 32 bytes \(got {size}\)"):
        KeyEncryptionKey("k1", b"\x01" * size)


def test_kek_rejects_str_secret() -> None:
    with pytest.raises(KeyringError, match="must be bytes"):
        KeyEncryptionKey("k1", "x" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_id", ["", "a" * 33, "a.b", "k 1", "kä", "k:1", "k,1", "k\n", None, 5])
def test_kek_rejects_bad_ids(key_id: object) -> None:
    with pytest.raises(KeyringError, match="invalid key id"):
        KeyEncryptionKey(key_id, K1)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_id", ["a", "A" * 32, "k2026-a_b", "0"])
def test_valid_ids(key_id: str) -> None:
    assert is_valid_key_id(key_id) is True


def test_kek_repr_hides_secret_and_is_immutable() -> None:
    kek = KeyEncryptionKey("k1", K1)
    assert repr(kek) == "KeyEncryptionKey(key_id='k1', secret=<redacted>)"
    assert K1.hex() not in repr(kek)
    with pytest.raises(AttributeError):
        kek.foo = 1


def test_keys_refuse_pickling_but_copy_is_identity() -> None:
    kek = KeyEncryptionKey("k1", K1)
    ring = Keyring({"k1": K1}, "k1")
    for obj in (kek, ring):
        with pytest.raises(TypeError, match="must not be pickled"):
            pickle.dumps(obj)
        assert copy.copy(obj) is obj
        assert copy.deepcopy(obj) is obj


# --- Keyring --------------------------------------------------------------------------------


def test_keyring_basics() -> None:
    ring = Keyring({"k1": K1, "k2": K2}, "k2")
    assert ring.active_key_id == "k2"
    assert ring.active.secret == K2
    assert ring.key_ids == ("k1", "k2")
    assert "k1" in ring
    assert "k3" not in ring
    assert len(ring) == 2
    assert list(ring) == ["k1", "k2"]
    assert ring.get("k1") is ring["k1"]
    assert ring.get("nope") is None
    assert repr(ring) == "Keyring(key_ids=('k1', 'k2'), active_key_id='k2')"
    with pytest.raises(KeyringError, match="'nope' is not in the keyring"):
        ring["nope"]


def test_keyring_requires_keys() -> None:
    with pytest.raises(KeyringError, match="at least one key"):
        Keyring({}, "k1")


def test_keyring_requires_active_present() -> None:
    with pytest.raises(KeyringError, match="active key id 'k9' is not in the keyring"):
        Keyring({"k1": K1}, "k9")


def test_keyring_invalid_active_id_is_not_echoed() -> None:
    material = b64(K2)
    with pytest.raises(KeyringError, match="active key id is invalid") as excinfo:
        Keyring({"k1": K1}, material)
    assert material not in str(excinfo.value)


def test_keyring_refuses_duplicate_material() -> None:
    with pytest.raises(KeyringError, match="keys 'a' and 'b' have identical key material"):
        Keyring({"a": K1, "b": K1}, "a")


def test_keyring_errors_are_crypto_and_value_errors() -> None:
    assert issubclass(KeyringError, CryptoError)
    assert issubclass(KeyringError, ValueError)


# --- from_config ----------------------------------------------------------------------------


def test_from_config_parses_padded_unpadded_and_standard_alphabet() -> None:
    k3_standard = base64.b64encode(K3).decode().rstrip("=")
    spec = f" k2026a:{b64(K1)} , k2025b:{b64(K2).rstrip('=')},\nold_key-3:{k3_standard}\n"
    ring = Keyring.from_config(spec, "k2025b")
    assert ring.key_ids == ("k2026a", "k2025b", "old_key-3")
    assert ring.active_key_id == "k2025b"
    assert ring["k2026a"].secret == K1
    assert ring["k2025b"].secret == K2
    assert ring["old_key-3"].secret == K3


def test_from_config_newline_separated() -> None:
    ring = Keyring.from_config(f"a:{b64(K1)}\nb:{b64(K2)}\n", "a")
    assert ring.key_ids == ("a", "b")


def _config_error(spec: str, active: str = "k1") -> str:
    with pytest.raises(KeyringError) as excinfo:
        Keyring.from_config(spec, active)
    return str(excinfo.value)


def test_from_config_errors_name_the_key_but_never_the_material() -> None:
    short = base64.urlsafe_b64encode(b"\x07" * 31).decode()
    good = b64(K1)
    cases = {
        f"k1:{good},k2:{short}": "key 'k2': key material must decode to exactly 32 bytes (got 31)",
        f"k1:{good},k2:{good[:-3]}!!": "key 'k2': key material is not valid base64",
        f"k1:{good},k2:": "key 'k2': key material is not valid base64",
        f"k1:{good},{good}": "key spec entry #2 is not of the form '<key id>:<base64 key>'",
        f"k1:{good},bad.id:{good}": "key spec entry #2 has an invalid key id",
        f"k1:{good},k1:{b64(K2)}": "key 'k1' appears more than once in the key spec",
        " , \n": "the key spec contains no keys",
    }
    for spec, expected in cases.items():
        message = _config_error(spec)
        assert message.startswith(expected), (spec, message)
        for material in (good, good.rstrip("="), short, b64(K2), good[:-3]):
            assert material not in message


def test_from_config_active_must_be_present() -> None:
    assert _config_error(f"k1:{b64(K1)}", active="k2") == (
        "the active key id 'k2' is not in the keyring"
    )


def test_from_config_rejects_non_string_spec() -> None:
    with pytest.raises(KeyringError, match="must be a string"):
        Keyring.from_config(None, "k1")  # type: ignore[arg-type]


# --- generate_key_spec ----------------------------------------------------------------------


def test_generate_key_spec_round_trips() -> None:
    entry = generate_key_spec("k2026a")
    key_id, _, material = entry.partition(":")
    assert key_id == "k2026a"
    assert len(base64.urlsafe_b64decode(material)) == 32
    ring = Keyring.from_config(entry + "," + generate_key_spec("k2025b"), "k2026a")
    assert ring.key_ids == ("k2026a", "k2025b")
    assert generate_key_spec("k1") != generate_key_spec("k1")


def test_generate_key_spec_rejects_bad_id() -> None:
    with pytest.raises(KeyringError, match="invalid key id"):
        generate_key_spec("no.dots")


# --- no Django, no SECRET_KEY ---------------------------------------------------------------


#: The pure core. The Django side (keys, values, fields, storage, rotation, models, apps and the
#: management command) builds on it and reads its settings, never SECRET_KEY, in keys.py.
PURE_MODULES = (
    "__init__.py",
    "_encoding.py",
    "blind_index.py",
    "envelope.py",
    "errors.py",
    "keyring.py",
    "streams.py",
)


def test_crypto_modules_import_neither_django_nor_secret_key() -> None:
    sources = [CRYPTO_DIR / name for name in PURE_MODULES]
    assert all(path.is_file() for path in sources)
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "SECRET_KEY" not in text.replace("``SECRET_KEY``", ""), path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "django" for name in names), path.name
