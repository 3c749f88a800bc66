from __future__ import annotations

import hashlib
import hmac

import pytest

from portal.crypto.blind_index import blind_index, normalise, patient_blind_index

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  José  ", "josé"),
        ("JOSÉ", "josé"),
        ("Jose\u0301", "josé"),  # combining acute accent
        ("\uff2a\uff4f\uff53\u00e9", "josé"),  # fullwidth letters
        ("Mary \t\n  Ann\u00a0Smith", "mary ann smith"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("\u2003 x \u3000", "x"),  # em space, ideographic space
        ("", ""),
        ("   ", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="value must be str"):
        normalise(b"x")  # type: ignore[arg-type]


def test_equivalent_inputs_share_an_index() -> None:
    expected = blind_index(KEY, "josé")
    for variant in ("  José  ", "JOSÉ", "Jose\u0301", "jos\u00e9", " \uff2a\uff4f\uff53\u00e9"):
        assert blind_index(KEY, variant) == expected
    assert blind_index(KEY, "jose") != expected


def test_output_shape_and_determinism() -> None:
    digest = blind_index(KEY, "a", "b")
    assert len(digest) == 64
    assert digest == digest.lower()
    int(digest, 16)
    assert blind_index(KEY, "a", "b") == digest


def test_exact_construction() -> None:
    message = (
        b"portal.crypto/blind-index/v1"
        + (2).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + b"ab"
        + (5).to_bytes(4, "big")
        + "josé".encode()
    )
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert blind_index(KEY, "AB", "  José ") == expected


def test_different_keys_differ() -> None:
    assert blind_index(KEY, "josé") != blind_index(OTHER_KEY, "josé")


def test_part_boundaries_are_unambiguous() -> None:
    digests = {
        blind_index(KEY, "ab", "c"),
        blind_index(KEY, "a", "bc"),
        blind_index(KEY, "abc"),
        blind_index(KEY, "a b", "c"),
        blind_index(KEY, "a", "b c"),
        blind_index(KEY, "a", "b", "c"),
        blind_index(KEY, "abc", ""),
        blind_index(KEY, "", "abc"),
    }
    assert len(digests) == 8


def test_key_and_part_validation() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        blind_index(b"short", "x")
    with pytest.raises(TypeError, match="key must be bytes"):
        blind_index("k" * 32, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one part"):
        blind_index(KEY)
    with pytest.raises(TypeError, match="value must be str"):
        blind_index(KEY, 1)  # type: ignore[arg-type]


def test_patient_blind_index() -> None:
    base = patient_blind_index(KEY, "José", "Ødegaard", "1980-02-29")
    assert patient_blind_index(KEY, "  JOSE\u0301 ", "ødegaard", " 1980-02-29 ") == base
    assert patient_blind_index(KEY, "José", "Ødegaard", "1980-03-01") != base
    assert patient_blind_index(KEY, "Ødegaard", "José", "1980-02-29") != base
    assert patient_blind_index(OTHER_KEY, "José", "Ødegaard", "1980-02-29") != base
    # bound to its purpose: not the same as a bare index over the same strings
    assert blind_index(KEY, "José", "Ødegaard", "1980-02-29") != base


@pytest.mark.parametrize("bad", ["1981-02-29", "19800229", "1980-2-29", "29/02/1980", "", "x"])
def test_patient_blind_index_rejects_bad_dates_without_echo(bad: str) -> None:
    with pytest.raises(ValueError, match="birth_date_iso must be a") as excinfo:
        patient_blind_index(KEY, "Secretname", "Familyname", bad)
    message = str(excinfo.value)
    assert "Secretname" not in message
    assert bad == "" or bad not in message
