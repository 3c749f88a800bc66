from __future__ import annotations

import base64
import os
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.crypto import envelope
from portal.crypto.envelope import (
    CryptoError,
    DecryptionError,
    WrappedKey,
    associated_data,
    decrypt_value,
    encrypt_value,
    generate_dek,
    reencrypt_value,
    rewrap,
    rewrap_value,
    token_key_id,
    token_wrapped_dek,
    unwrap_dek,
    wrap_dek,
)
from portal.crypto.keyring import Keyring

from .helpers import (
    CANARY,
    K1,
    K2,
    K3,
    ad_for,
    keyring_k1,
    keyring_k1_k2_active_k2,
    keyring_k2_only,
)

B64_ALPHABET = string.ascii_letters + string.digits + "-_"


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _reason(keyring: Keyring, token: object, ad: bytes) -> str:
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_value(keyring, token, associated_data=ad)  # type: ignore[arg-type]
    return excinfo.value.reason


# --- round trips and format -----------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        "José Zoë Ødegaard — 患者 😀".encode(),
        os.urandom(4096),
        bytes(range(256)) * 3,
        b"\x00" * 100,
    ],
    ids=["empty", "unicode", "4kb-random", "all-bytes", "zeros"],
)
def test_round_trip(plaintext: bytes) -> None:
    ring = keyring_k1()
    token = encrypt_value(ring, plaintext, associated_data=ad_for())
    assert decrypt_value(ring, token, associated_data=ad_for()) == plaintext


def test_token_format() -> None:
    ring = keyring_k1()
    plaintext = b"x" * 50
    token = encrypt_value(ring, plaintext, associated_data=ad_for())
    assert token.isascii()
    version, key_id, wrapped, nonce, ciphertext = token.split(".")
    assert (version, key_id) == ("v1", "k1")
    assert len(wrapped) == 80
    assert len(_b64d(wrapped)) == 12 + 32 + 16
    assert len(_b64d(nonce)) == 12
    assert len(_b64d(ciphertext)) == len(plaintext) + 16
    assert set(wrapped + nonce + ciphertext) <= set(B64_ALPHABET)
    assert token_key_id(token) == "k1"
    assert token_wrapped_dek(token) == f"w1.k1.{wrapped}"


def test_every_encryption_uses_fresh_nonce_and_dek() -> None:
    ring = keyring_k1()
    tokens = [encrypt_value(ring, b"same", associated_data=ad_for()) for _ in range(50)]
    parts = [token.split(".") for token in tokens]
    assert len({p[2] for p in parts}) == 50  # wrapped DEKs
    assert len({p[3] for p in parts}) == 50  # value nonces
    assert len({p[4] for p in parts}) == 50  # ciphertexts
    assert len({_b64d(p[2])[:12] for p in parts}) == 50  # wrap nonces


def test_plaintext_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="plaintext must be bytes"):
        encrypt_value(keyring_k1(), "text", associated_data=ad_for())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="associated_data must be bytes"):
        encrypt_value(keyring_k1(), b"x", associated_data="ad")  # type: ignore[arg-type]


# --- fail closed ----------------------------------------------------------------------------


def test_flipped_bit_in_every_decoded_byte_fails_authentication() -> None:
    ring = keyring_k1()
    ad = ad_for()
    token = encrypt_value(ring, b"secret", associated_data=ad)
    parts = token.split(".")
    for segment in (2, 3, 4):
        raw = _b64d(parts[segment])
        for index in range(len(raw)):
            for bit in (0x01, 0x80):
                flipped = bytearray(raw)
                flipped[index] ^= bit
                tampered = parts.copy()
                tampered[segment] = _b64e(bytes(flipped))
                assert _reason(ring, ".".join(tampered), ad) == "authentication_failed"


def test_any_changed_character_fails_closed() -> None:
    ring = keyring_k1()
    ad = ad_for()
    token = encrypt_value(ring, b"secret", associated_data=ad)
    for position, char in enumerate(token):
        replacement = "A" if char != "A" else "B"
        tampered = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(DecryptionError):
            decrypt_value(ring, tampered, associated_data=ad)


def test_segment_reasons() -> None:
    ring = Keyring({"k1": K1, "k2": K2}, "k1")
    ad = ad_for()
    token = encrypt_value(ring, b"secret", associated_data=ad)
    version, _key_id, wrapped, nonce, ciphertext = token.split(".")
    # version
    for bad_version in ("v2", "V1", "v0", "w1", "v1 ", ""):
        assert _reason(ring, ".".join((bad_version, "k1", wrapped, nonce, ciphertext)), ad) == (
            "malformed"
        )
    # KEK id: unknown, another real key, or an impossible id
    assert _reason(ring, ".".join((version, "k3", wrapped, nonce, ciphertext)), ad) == (
        "unknown_key"
    )
    assert _reason(ring, ".".join((version, "k2", wrapped, nonce, ciphertext)), ad) == (
        "authentication_failed"
    )
    assert _reason(ring, ".".join((version, "k!", wrapped, nonce, ciphertext)), ad) == ("malformed")
    # wrapped DEK / nonce / ciphertext: invalid base64, wrong length
    cases = [
        (segment, bad)
        for segment, good in ((2, wrapped), (3, nonce), (4, ciphertext))
        for bad in (good[:-1] + "!", good + "=", " " + good, good + "\n", good + "+")
    ]
    # fixed-size fields of the wrong size
    cases += [(2, wrapped[:-4]), (2, wrapped + "AAAA"), (3, nonce[:-4]), (3, nonce + "AAAA")]
    for segment, bad in cases:
        parts = token.split(".")
        parts[segment] = bad
        assert _reason(ring, ".".join(parts), ad) == "malformed", (segment, bad)


def test_truncated_tokens_fail_closed() -> None:
    ring = keyring_k1()
    ad = ad_for()
    token = encrypt_value(ring, b"twelve bytes", associated_data=ad)
    for length in range(len(token)):
        with pytest.raises(DecryptionError):
            decrypt_value(ring, token[:length], associated_data=ad)
    prefix, ciphertext = token.rsplit(".", 1)
    assert _reason(ring, prefix, ad) == "malformed"  # a whole segment missing
    raw = _b64d(ciphertext)
    assert _reason(ring, f"{prefix}.{_b64e(raw[:-1])}", ad) == "authentication_failed"
    assert _reason(ring, f"{prefix}.{_b64e(raw[:15])}", ad) == "malformed"  # shorter than a tag
    assert _reason(ring, f"{prefix}.", ad) == "malformed"


@pytest.mark.parametrize(
    "garbage",
    ["", "hello", "v1", "v1....", "v1.k1.a.b.c", "v1.k1...", ".....", "v1.k1.x.y.z.w"],
)
def test_garbage_is_malformed(garbage: str) -> None:
    assert _reason(keyring_k1(), garbage, ad_for()) == "malformed"


@pytest.mark.parametrize("not_a_str", [None, b"v1.k1.a.b.c", 42, memoryview(b"v1")])
def test_non_string_token_is_malformed(not_a_str: object) -> None:
    assert _reason(keyring_k1(), not_a_str, ad_for()) == "malformed"


def test_whitespace_or_padding_around_token_is_malformed() -> None:
    ring = keyring_k1()
    token = encrypt_value(ring, b"x", associated_data=ad_for())
    for bad in (token + "\n", " " + token, token + "=", token + "."):
        assert _reason(ring, bad, ad_for()) == "malformed"


def test_value_moved_to_another_row_or_field_fails() -> None:
    ring = keyring_k1()
    token = encrypt_value(ring, b"secret", associated_data=ad_for("row-1", "notes"))
    assert _reason(ring, token, ad_for("row-2", "notes")) == "authentication_failed"
    assert _reason(ring, token, ad_for("row-1", "summary")) == "authentication_failed"
    other_model = associated_data("referrals", "referral", "notes", "row-1")
    assert _reason(ring, token, other_model) == "authentication_failed"
    other_app = associated_data("messaging", "patient", "notes", "row-1")
    assert _reason(ring, token, other_app) == "authentication_failed"


def test_dek_moved_to_another_row_fails() -> None:
    ring = keyring_k1()
    ad_a, ad_b = ad_for("row-a"), ad_for("row-b")
    token_a = encrypt_value(ring, b"alpha", associated_data=ad_a)
    token_b = encrypt_value(ring, b"bravo", associated_data=ad_b)
    a, b = token_a.split("."), token_b.split(".")
    # row B's data with row A's wrapped DEK, presented as row B: the wrap is bound to row A
    spliced = ".".join((b[0], a[1], a[2], b[3], b[4]))
    assert _reason(ring, spliced, ad_b) == "authentication_failed"
    # row A's wrapped DEK cannot be re-wrapped or reused as row B either
    with pytest.raises(DecryptionError) as excinfo:
        rewrap_value(keyring_k1_k2_active_k2(), spliced, associated_data=ad_b)
    assert excinfo.value.reason == "authentication_failed"
    with pytest.raises(DecryptionError) as excinfo:
        encrypt_value(ring, b"x", associated_data=ad_b, wrapped_dek=token_wrapped_dek(token_a))
    assert excinfo.value.reason == "authentication_failed"


def test_segments_swapped_between_tokens_of_same_row_fail() -> None:
    ring = keyring_k1()
    ad = ad_for()
    a = encrypt_value(ring, b"first value", associated_data=ad).split(".")
    b = encrypt_value(ring, b"other value", associated_data=ad).split(".")
    for mix in ((a[2], b[3], b[4]), (b[2], a[3], b[4]), (b[2], b[3], a[4])):
        assert _reason(ring, ".".join(("v1", "k1", *mix)), ad) == "authentication_failed"


def test_unknown_key_id() -> None:
    token = encrypt_value(keyring_k1(), b"secret", associated_data=ad_for())
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_value(keyring_k2_only(), token, associated_data=ad_for())
    assert excinfo.value.reason == "unknown_key"
    assert excinfo.value.key_id == "k1"


def test_same_id_different_material_fails_authentication() -> None:
    token = encrypt_value(keyring_k1(), b"secret", associated_data=ad_for())
    impostor = Keyring({"k1": K3}, "k1")
    assert _reason(impostor, token, ad_for()) == "authentication_failed"


def test_errors_carry_no_secrets() -> None:
    ring = keyring_k1()
    token = encrypt_value(ring, CANARY, associated_data=ad_for())
    parts = token.split(".")
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_value(ring, token, associated_data=ad_for("row-2"))
    error = excinfo.value
    assert error.__cause__ is None
    assert error.__suppress_context__ is True
    for text in (str(error), repr(error)):
        for secret in (*parts[2:], CANARY.decode(), K1.hex()):
            assert secret not in text
    assert repr(error) == "DecryptionError(reason='authentication_failed', key_id='k1')"


def test_decryption_error_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="unknown decryption failure reason"):
        DecryptionError("oops")  # type: ignore[arg-type]


# --- associated data ------------------------------------------------------------------------


def test_associated_data_is_unambiguous() -> None:
    base = ["app", "model", "field", "row"]
    seen = {associated_data(*base)}
    for i in range(3):
        for shift in (1, -1):
            parts = base.copy()
            if shift == 1:  # move the first char of part i+1 to the end of part i
                parts[i], parts[i + 1] = parts[i] + parts[i + 1][0], parts[i + 1][1:]
            else:  # move the last char of part i to the front of part i+1
                parts[i], parts[i + 1] = parts[i][:-1], parts[i][-1] + parts[i + 1]
            seen.add(associated_data(*parts))
    assert len(seen) == 7
    assert associated_data("a", "bc", "d", "e") != associated_data("ab", "c", "d", "e")
    assert associated_data("a", "b", "c", "d") == associated_data("a", "b", "c", "d")
    assert associated_data("a", "b", "c", "D") != associated_data("a", "b", "c", "d")


def test_associated_data_exact_encoding() -> None:
    assert associated_data("ap", "m", "f", "é") == (
        b"portal.crypto/ad/v1"
        b"\x00\x00\x00\x02ap"
        b"\x00\x00\x00\x01m"
        b"\x00\x00\x00\x01f"
        b"\x00\x00\x00\x02\xc3\xa9"
    )


def test_associated_data_validation() -> None:
    with pytest.raises(TypeError, match="'row' must be str, not int"):
        associated_data("a", "b", "c", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'field' must not be empty"):
        associated_data("a", "b", "", "1")


# --- wrapped DEKs ---------------------------------------------------------------------------


def test_wrap_unwrap_rewrap() -> None:
    ring1 = keyring_k1()
    dek = generate_dek()
    assert len(dek) == 32
    wrapped = wrap_dek(ring1, dek, context=b"ctx")
    assert wrapped.startswith("w1.k1.")
    assert len(wrapped.split(".")[2]) == 80
    assert unwrap_dek(ring1, wrapped, context=b"ctx") == dek
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_dek(ring1, wrapped, context=b"other")
    assert excinfo.value.reason == "authentication_failed"

    ring2 = keyring_k1_k2_active_k2()
    moved = rewrap(ring2, wrapped, context=b"ctx")
    assert moved.startswith("w1.k2.")
    assert unwrap_dek(keyring_k2_only(), moved, context=b"ctx") == dek
    assert rewrap(ring2, moved, context=b"ctx") is moved
    with pytest.raises(DecryptionError) as excinfo:
        rewrap(ring2, wrapped, context=b"other")
    assert excinfo.value.reason == "authentication_failed"


@pytest.mark.parametrize(
    "bad", ["", "w1", "w2.k1.AAAA", "w1.k1.AAAA", "w1..AAAA", "w1.k1.AAAA.x", "v1.k1.a.b.c"]
)
def test_malformed_wrapped_keys(bad: str) -> None:
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_dek(keyring_k1(), bad, context=b"ctx")
    assert excinfo.value.reason == "malformed"


def test_wrap_dek_requires_32_byte_dek() -> None:
    with pytest.raises(CryptoError, match="exactly 32 bytes"):
        wrap_dek(keyring_k1(), b"\x00" * 16, context=b"ctx")


def test_wrapped_key_repr_hides_material() -> None:
    wrapped = WrappedKey.from_str(wrap_dek(keyring_k1(), generate_dek(), context=b"c"))
    assert repr(wrapped) == "WrappedKey(key_id='k1')"


def test_dek_wrap_is_bound_to_its_role() -> None:
    ring = keyring_k1()
    dek = generate_dek()
    as_stream = envelope._wrap_with(ring.active, dek, role=b"stream-dek", context=ad_for())
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_dek(ring, as_stream.to_str(), context=ad_for())
    assert excinfo.value.reason == "authentication_failed"


def test_encrypt_with_supplied_wrapped_dek() -> None:
    ad = ad_for()
    ring1 = keyring_k1()
    first = encrypt_value(ring1, b"v1", associated_data=ad)
    second = encrypt_value(ring1, b"v2", associated_data=ad, wrapped_dek=token_wrapped_dek(first))
    assert second.split(".")[:3] == first.split(".")[:3]  # same DEK, same wrap
    assert second.split(".")[3] != first.split(".")[3]  # fresh nonce
    assert decrypt_value(ring1, second, associated_data=ad) == b"v2"
    # wrap_dek with context == associated data is accepted too
    dek_string = wrap_dek(ring1, generate_dek(), context=ad)
    third = encrypt_value(ring1, b"v3", associated_data=ad, wrapped_dek=dek_string)
    assert decrypt_value(ring1, third, associated_data=ad) == b"v3"
    # a DEK still wrapped under an old KEK lands on the active one
    ring2 = keyring_k1_k2_active_k2()
    fourth = encrypt_value(ring2, b"v4", associated_data=ad, wrapped_dek=token_wrapped_dek(first))
    assert token_key_id(fourth) == "k2"
    assert decrypt_value(keyring_k2_only(), fourth, associated_data=ad) == b"v4"


# --- rotation -------------------------------------------------------------------------------


def test_rotation_end_to_end() -> None:
    ad = ad_for()
    old = encrypt_value(keyring_k1(), b"phi", associated_data=ad)
    assert token_key_id(old) == "k1"

    both = keyring_k1_k2_active_k2()
    assert decrypt_value(both, old, associated_data=ad) == b"phi"
    new = rewrap_value(both, old, associated_data=ad)
    assert token_key_id(new) == "k2"
    assert new != old
    assert new.split(".")[3:] == old.split(".")[3:]  # value nonce and ciphertext untouched
    assert decrypt_value(both, new, associated_data=ad) == b"phi"

    # rerun: same object back, no work
    assert rewrap_value(both, new, associated_data=ad) is new
    assert (
        rewrap_value(both, rewrap_value(both, new, associated_data=ad), associated_data=ad) == new
    )

    # k1 retired
    only_k2 = keyring_k2_only()
    assert decrypt_value(only_k2, new, associated_data=ad) == b"phi"
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_value(only_k2, old, associated_data=ad)
    assert (excinfo.value.reason, excinfo.value.key_id) == ("unknown_key", "k1")
    with pytest.raises(DecryptionError) as excinfo:
        rewrap_value(only_k2, old, associated_data=ad)
    assert excinfo.value.reason == "unknown_key"


def test_rewrap_value_requires_the_right_binding() -> None:
    old = encrypt_value(keyring_k1(), b"phi", associated_data=ad_for("row-1"))
    with pytest.raises(DecryptionError) as excinfo:
        rewrap_value(keyring_k1_k2_active_k2(), old, associated_data=ad_for("row-2"))
    assert excinfo.value.reason == "authentication_failed"


def test_rewrap_value_rejects_malformed() -> None:
    with pytest.raises(DecryptionError) as excinfo:
        rewrap_value(keyring_k1(), "v9.k1.a.b.c", associated_data=ad_for())
    assert excinfo.value.reason == "malformed"


def test_new_writes_use_active_key() -> None:
    token = encrypt_value(keyring_k1_k2_active_k2(), b"x", associated_data=ad_for())
    assert token_key_id(token) == "k2"


def test_reencrypt_value() -> None:
    ad = ad_for()
    old = encrypt_value(keyring_k1(), b"phi", associated_data=ad)
    ring = keyring_k1_k2_active_k2()
    new = reencrypt_value(ring, old, associated_data=ad)
    old_parts, new_parts = old.split("."), new.split(".")
    assert new_parts[:2] == ["v1", "k2"]
    assert all(o != n for o, n in zip(old_parts[2:], new_parts[2:], strict=True))
    assert decrypt_value(keyring_k2_only(), new, associated_data=ad) == b"phi"

    moved = reencrypt_value(ring, old, associated_data=ad, new_associated_data=ad_for("row-9"))
    assert decrypt_value(ring, moved, associated_data=ad_for("row-9")) == b"phi"
    assert _reason(ring, moved, ad) == "authentication_failed"

    with pytest.raises(DecryptionError) as excinfo:
        reencrypt_value(ring, old, associated_data=ad_for("row-2"))
    assert excinfo.value.reason == "authentication_failed"


# --- canary ---------------------------------------------------------------------------------


def test_token_never_contains_the_canary() -> None:
    ring = keyring_k1()
    plaintext = b"prefix " + CANARY * 20 + b" suffix"
    for _ in range(20):
        token = encrypt_value(ring, plaintext, associated_data=ad_for())
        raw = token.encode()
        decoded = b"".join(_b64d(part) for part in token.split(".")[2:])
        assert CANARY not in raw
        assert CANARY not in decoded
        assert CANARY.decode() not in token
        for shift in range(3):  # base64 of the canary at any alignment
            needle = base64.urlsafe_b64encode(b"x" * shift + CANARY)[4:-4]
            assert needle not in raw
        assert decrypt_value(ring, token, associated_data=ad_for()) == plaintext


# --- property -------------------------------------------------------------------------------

_part = st.text(min_size=1, max_size=20)


@settings(database=None, max_examples=150, deadline=None)
@given(
    plaintext=st.binary(max_size=2048),
    parts=st.tuples(_part, _part, _part, _part),
    other_row=_part,
)
def test_round_trip_property(
    plaintext: bytes, parts: tuple[str, str, str, str], other_row: str
) -> None:
    ring = keyring_k1()
    ad = associated_data(*parts)
    token = encrypt_value(ring, plaintext, associated_data=ad)
    assert decrypt_value(ring, token, associated_data=ad) == plaintext
    rotated = rewrap_value(keyring_k1_k2_active_k2(), token, associated_data=ad)
    assert decrypt_value(keyring_k2_only(), rotated, associated_data=ad) == plaintext
    if other_row != parts[3]:
        other = associated_data(*parts[:3], other_row)
        assert _reason(ring, token, other) == "authentication_failed"
