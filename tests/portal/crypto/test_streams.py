from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.crypto.envelope import WrappedKey, encrypt_value, unwrap_dek
from portal.crypto.errors import DecryptionError
from portal.crypto.keyring import Keyring
from portal.crypto.streams import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    StreamInfo,
    decrypt_stream,
    decrypt_stream_to,
    encrypt_stream,
    encrypted_size,
    read_stream_header,
    rewrap_stream_file,
    rewrap_stream_header,
    stream_header_key_id,
)

from .helpers import (
    CANARY,
    K1,
    K3,
    ad_for,
    keyring_k1,
    keyring_k1_k2_active_k2,
    keyring_k2_only,
)

TAG = 16
SMALL = 1000  # chunk size for tamper tests


def _encrypt(
    data: bytes,
    *,
    ring: Keyring | None = None,
    ad: bytes | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[bytes, StreamInfo]:
    dest = io.BytesIO()
    info = encrypt_stream(
        ring or keyring_k1(),
        io.BytesIO(data),
        dest,
        associated_data=ad if ad is not None else ad_for(),
        chunk_size=chunk_size,
    )
    return dest.getvalue(), info


def _decrypt(blob: bytes, *, ring: Keyring | None = None, ad: bytes | None = None) -> list[bytes]:
    return list(
        decrypt_stream(
            ring or keyring_k1(),
            io.BytesIO(blob),
            associated_data=ad if ad is not None else ad_for(),
        )
    )


def _reason(blob: bytes, *, ring: Keyring | None = None, ad: bytes | None = None) -> str:
    with pytest.raises(DecryptionError) as excinfo:
        _decrypt(blob, ring=ring, ad=ad)
    return excinfo.value.reason


def _chunks_of(blob: bytes, chunk_size: int) -> list[bytes]:
    body = blob[HEADER_SIZE:]
    step = chunk_size + TAG
    return [body[i : i + step] for i in range(0, len(body), step)]


# --- round trips ----------------------------------------------------------------------------


def test_multi_chunk_with_odd_tail() -> None:
    data = os.urandom(1024 * 1024 + 1237)
    blob, info = _encrypt(data)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.key_id == "k1"
    assert info.encrypted_size == len(blob) == encrypted_size(len(data))
    assert len(blob) == HEADER_SIZE + len(data) + 17 * TAG
    chunks = _decrypt(blob)
    assert [len(c) for c in chunks] == [DEFAULT_CHUNK_SIZE] * 16 + [1237]
    assert b"".join(chunks) == data


def test_exact_chunk_multiple_has_no_empty_trailer() -> None:
    data = os.urandom(4 * SMALL)
    blob, info = _encrypt(data, chunk_size=SMALL)
    assert len(blob) == HEADER_SIZE + 4 * (SMALL + TAG) == info.encrypted_size
    chunks = _decrypt(blob)
    assert [len(c) for c in chunks] == [SMALL] * 4
    assert b"".join(chunks) == data


def test_empty_file() -> None:
    blob, info = _encrypt(b"")
    assert len(blob) == HEADER_SIZE + TAG
    assert info == StreamInfo(
        size=0,
        sha256=hashlib.sha256(b"").hexdigest(),
        key_id="k1",
        encrypted_size=HEADER_SIZE + TAG,
    )
    assert _decrypt(blob) == [b""]


def test_single_short_chunk() -> None:
    blob, _ = _encrypt(b"hello", chunk_size=SMALL)
    assert _decrypt(blob) == [b"hello"]


class _Trickle(io.RawIOBase):
    """A source/sink that moves at most ``step`` bytes per call (like a pipe or socket)."""

    def __init__(self, data: bytes = b"", step: int = 7) -> None:
        self._data = io.BytesIO(data)
        self.written = bytearray()
        self._step = step

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), self._step))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        part = bytes(data[: self._step])
        self.written += part
        return len(part)


def test_short_reads_and_partial_writes() -> None:
    data = os.urandom(5 * SMALL + 3)
    source, sink = _Trickle(data), _Trickle()
    info = encrypt_stream(keyring_k1(), source, sink, associated_data=ad_for(), chunk_size=SMALL)  # type: ignore[arg-type]
    blob = bytes(sink.written)
    assert info.encrypted_size == len(blob)
    plain = list(decrypt_stream(keyring_k1(), _Trickle(blob), associated_data=ad_for()))  # type: ignore[arg-type]
    assert b"".join(plain) == data
    assert [len(c) for c in plain] == [SMALL] * 5 + [3]


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_CHUNK_SIZE + 1, True, 1.5])
def test_chunk_size_validation(chunk_size: object) -> None:
    with pytest.raises(ValueError, match="chunk_size must be an int"):
        _encrypt(b"x", chunk_size=chunk_size)  # type: ignore[arg-type]


# --- tampering ------------------------------------------------------------------------------


def test_flipped_byte_in_each_chunk_fails() -> None:
    data = os.urandom(3 * SMALL + 10)
    blob, _ = _encrypt(data, chunk_size=SMALL)
    step = SMALL + TAG
    offsets = {
        "first chunk start": HEADER_SIZE,
        "first chunk tag": HEADER_SIZE + step - 1,
        "middle chunk": HEADER_SIZE + step + 500,
        "last chunk": HEADER_SIZE + 3 * step + 2,
        "last byte": len(blob) - 1,
    }
    for name, offset in offsets.items():
        tampered = bytearray(blob)
        tampered[offset] ^= 0x01
        assert _reason(bytes(tampered)) == "authentication_failed", name


def test_tamper_in_later_chunk_raises_after_earlier_chunks() -> None:
    data = os.urandom(3 * SMALL)
    blob, _ = _encrypt(data, chunk_size=SMALL)
    tampered = bytearray(blob)
    tampered[HEADER_SIZE + 2 * (SMALL + TAG) + 5] ^= 0x80
    chunks = decrypt_stream(keyring_k1(), io.BytesIO(bytes(tampered)), associated_data=ad_for())
    assert next(chunks) == data[:SMALL]
    assert next(chunks) == data[SMALL : 2 * SMALL]
    with pytest.raises(DecryptionError) as excinfo:
        next(chunks)
    assert excinfo.value.reason == "authentication_failed"


def test_first_chunk_is_checked_before_returning() -> None:
    blob, _ = _encrypt(b"short file", chunk_size=SMALL)
    tampered = bytearray(blob)
    tampered[-1] ^= 0x01
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_stream(keyring_k1(), io.BytesIO(bytes(tampered)), associated_data=ad_for())
    assert excinfo.value.reason == "authentication_failed"


def test_flipped_bit_anywhere_in_header_fails() -> None:
    blob, _ = _encrypt(os.urandom(2 * SMALL + 1), ring=Keyring({"k1": K1}, "k1"), chunk_size=SMALL)
    regions: dict[str, tuple[range, set[str]]] = {
        "magic+version": (range(0, 5), {"malformed"}),
        "chunk size": (range(5, 9), {"malformed", "authentication_failed"}),
        "nonce prefix": (range(9, 16), {"authentication_failed"}),
        "key id length": (range(16, 17), {"malformed"}),
        "key id": (range(17, 19), {"unknown_key", "malformed"}),  # "k1" -> "j1" or "+1"
        "key id padding": (range(19, 49), {"malformed"}),
        "wrap nonce + wrapped dek": (range(49, HEADER_SIZE), {"authentication_failed"}),
    }
    covered = set()
    for name, (positions, reasons) in regions.items():
        for position in positions:
            covered.add(position)
            for bit in (0x01, 0x40):
                tampered = bytearray(blob)
                tampered[position] ^= bit
                assert _reason(bytes(tampered)) in reasons, (name, position, bit)
    assert covered == set(range(HEADER_SIZE))


def test_truncation_fails_everywhere() -> None:
    data = os.urandom(3 * SMALL + 10)
    blob, _ = _encrypt(data, chunk_size=SMALL)
    step = SMALL + TAG
    # at every chunk boundary: the last remaining chunk was not sealed as final
    for chunks_kept in (1, 2, 3):
        assert _reason(blob[: HEADER_SIZE + chunks_kept * step]) == "authentication_failed"
    assert _reason(blob[:HEADER_SIZE]) == "malformed"  # no chunk at all
    assert _reason(blob[: HEADER_SIZE + 5]) == "malformed"  # less than a tag
    assert _reason(blob[:-1]) == "authentication_failed"  # inside the final chunk
    assert _reason(blob[: HEADER_SIZE + step + 100]) == "authentication_failed"
    for length in (0, 1, 50, HEADER_SIZE - 1):
        assert _reason(blob[:length]) == "malformed"


def test_empty_file_truncated_fails() -> None:
    blob, _ = _encrypt(b"")
    assert _reason(blob[:-1]) == "malformed"
    assert _reason(blob[:HEADER_SIZE]) == "malformed"


def test_trailing_data_fails() -> None:
    blob, _ = _encrypt(os.urandom(2 * SMALL + 5), chunk_size=SMALL)
    assert _reason(blob + b"\x00") == "authentication_failed"
    last = _chunks_of(blob, SMALL)[-1]
    assert _reason(blob + last) == "authentication_failed"
    exact, _ = _encrypt(os.urandom(2 * SMALL), chunk_size=SMALL)
    assert _reason(exact + _chunks_of(exact, SMALL)[-1]) == "authentication_failed"


def test_chunk_reordering_fails() -> None:
    blob, _ = _encrypt(os.urandom(4 * SMALL), chunk_size=SMALL)
    header, chunks = blob[:HEADER_SIZE], _chunks_of(blob, SMALL)
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [0, 1, 3, 2], [3, 1, 2, 0]):
        assert _reason(header + b"".join(chunks[i] for i in order)) == "authentication_failed"
    # dropping a middle chunk
    assert _reason(header + chunks[0] + chunks[2] + chunks[3]) == "authentication_failed"
    # duplicating one
    assert _reason(header + chunks[0] + chunks[0] + chunks[2] + chunks[3]) == (
        "authentication_failed"
    )


def test_chunks_spliced_from_another_file_fail() -> None:
    blob_a, _ = _encrypt(os.urandom(3 * SMALL), chunk_size=SMALL)
    blob_b, _ = _encrypt(os.urandom(3 * SMALL), chunk_size=SMALL)
    a, b = _chunks_of(blob_a, SMALL), _chunks_of(blob_b, SMALL)
    assert _reason(blob_a[:HEADER_SIZE] + a[0] + b[1] + a[2]) == "authentication_failed"


def test_header_swapped_with_another_files_fails() -> None:
    data_a, data_b = os.urandom(2 * SMALL + 1), os.urandom(2 * SMALL + 1)
    blob_a, _ = _encrypt(data_a, chunk_size=SMALL)
    blob_b, _ = _encrypt(data_b, chunk_size=SMALL)
    # same binding (e.g. a replaced attachment of the same row): B's DEK cannot open A's chunks
    assert _reason(blob_b[:HEADER_SIZE] + blob_a[HEADER_SIZE:]) == "authentication_failed"
    # only the key block swapped: it is bound to its own file's header core
    mixed = blob_a[:16] + blob_b[16:HEADER_SIZE] + blob_a[HEADER_SIZE:]
    assert _reason(mixed) == "authentication_failed"
    # a file from another row
    blob_c, _ = _encrypt(data_a, ad=ad_for("row-2"), chunk_size=SMALL)
    assert _reason(blob_c[:HEADER_SIZE] + blob_a[HEADER_SIZE:]) == "authentication_failed"


def test_file_moved_to_another_row_or_field_fails() -> None:
    blob, _ = _encrypt(b"attachment", ad=ad_for("row-1", "attachment"))
    assert _reason(blob, ad=ad_for("row-2", "attachment")) == "authentication_failed"
    assert _reason(blob, ad=ad_for("row-1", "report")) == "authentication_failed"
    assert _decrypt(blob, ad=ad_for("row-1", "attachment")) == [b"attachment"]


def test_unknown_key_and_wrong_material() -> None:
    blob, _ = _encrypt(b"x")
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_stream(keyring_k2_only(), io.BytesIO(blob), associated_data=ad_for())
    assert (excinfo.value.reason, excinfo.value.key_id) == ("unknown_key", "k1")
    assert _reason(blob, ring=Keyring({"k1": K3}, "k1")) == "authentication_failed"


def test_not_an_encrypted_file() -> None:
    assert _reason(b"%PDF-1.7\n" + os.urandom(500)) == "malformed"
    assert _reason(b"") == "malformed"


def test_stream_dek_is_not_a_value_dek() -> None:
    blob, _ = _encrypt(b"x")
    wrapped = WrappedKey.from_body("k1", blob[49:HEADER_SIZE])
    with pytest.raises(DecryptionError) as excinfo:
        unwrap_dek(keyring_k1(), wrapped.to_str(), context=ad_for())
    assert excinfo.value.reason == "authentication_failed"
    with pytest.raises(DecryptionError) as excinfo:
        encrypt_value(keyring_k1(), b"y", associated_data=ad_for(), wrapped_dek=wrapped.to_str())
    assert excinfo.value.reason == "authentication_failed"


# --- decrypt_stream_to ----------------------------------------------------------------------


def test_decrypt_stream_to_checks_sha256() -> None:
    data = os.urandom(3 * SMALL + 1)
    blob, info = _encrypt(data, chunk_size=SMALL)
    out = io.BytesIO()
    result = decrypt_stream_to(
        keyring_k1(),
        io.BytesIO(blob),
        out,
        associated_data=ad_for(),
        expected_sha256=info.sha256.upper(),
    )
    assert out.getvalue() == data
    assert result == info
    with pytest.raises(DecryptionError) as excinfo:
        decrypt_stream_to(
            keyring_k1(),
            io.BytesIO(blob),
            io.BytesIO(),
            associated_data=ad_for(),
            expected_sha256=hashlib.sha256(b"other").hexdigest(),
        )
    assert excinfo.value.reason == "authentication_failed"
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        decrypt_stream_to(
            keyring_k1(),
            io.BytesIO(blob),
            io.BytesIO(),
            associated_data=ad_for(),
            expected_sha256="xyz",
        )


# --- rotation -------------------------------------------------------------------------------


def test_rewrap_stream_header() -> None:
    data = os.urandom(2 * SMALL + 7)
    blob, _ = _encrypt(data, chunk_size=SMALL)
    header = read_stream_header(io.BytesIO(blob))
    assert header == blob[:HEADER_SIZE]
    assert stream_header_key_id(header) == "k1"

    both = keyring_k1_k2_active_k2()
    new_header = rewrap_stream_header(both, header, associated_data=ad_for())
    assert len(new_header) == HEADER_SIZE
    assert stream_header_key_id(new_header) == "k2"
    assert new_header[:16] == header[:16]
    assert rewrap_stream_header(both, new_header, associated_data=ad_for()) is new_header

    rotated = new_header + blob[HEADER_SIZE:]
    assert b"".join(_decrypt(rotated, ring=keyring_k2_only())) == data
    assert _reason(blob, ring=keyring_k2_only()) == "unknown_key"

    with pytest.raises(DecryptionError) as excinfo:
        rewrap_stream_header(both, header, associated_data=ad_for("row-2"))
    assert excinfo.value.reason == "authentication_failed"
    with pytest.raises(DecryptionError) as excinfo:
        rewrap_stream_header(both, header[:-1], associated_data=ad_for())
    assert excinfo.value.reason == "malformed"


def test_rewrap_stream_file_in_place(tmp_path: Path) -> None:
    data = os.urandom(3 * SMALL)
    blob, _ = _encrypt(data, chunk_size=SMALL)
    path = tmp_path / "attachment.bin"
    path.write_bytes(blob)
    both = keyring_k1_k2_active_k2()
    with path.open("r+b") as fileobj:
        assert rewrap_stream_file(both, fileobj, associated_data=ad_for()) is True
    with path.open("r+b") as fileobj:
        assert rewrap_stream_file(both, fileobj, associated_data=ad_for()) is False
    rotated = path.read_bytes()
    assert len(rotated) == len(blob)
    assert rotated[HEADER_SIZE:] == blob[HEADER_SIZE:]
    assert b"".join(_decrypt(rotated, ring=keyring_k2_only())) == data

    memory = io.BytesIO(blob)
    assert rewrap_stream_file(both, memory, associated_data=ad_for()) is True
    assert memory.getvalue()[HEADER_SIZE:] == blob[HEADER_SIZE:]


# --- canary ---------------------------------------------------------------------------------


def test_encrypted_file_never_contains_the_canary(tmp_path: Path) -> None:
    data = (b"A" * 5000 + CANARY) * 200
    path = tmp_path / "enc.bin"
    with path.open("wb") as dest:
        encrypt_stream(
            keyring_k1(), io.BytesIO(data), dest, associated_data=ad_for(), chunk_size=SMALL
        )
    on_disk = path.read_bytes()
    assert CANARY not in on_disk
    assert CANARY[:12] not in on_disk
    with path.open("rb") as source:
        assert b"".join(decrypt_stream(keyring_k1(), source, associated_data=ad_for())) == data


# --- property -------------------------------------------------------------------------------


@settings(database=None, max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000), chunk_size=st.integers(min_value=1, max_value=400))
def test_stream_round_trip_property(data: bytes, chunk_size: int) -> None:
    blob, info = _encrypt(data, chunk_size=chunk_size)
    assert len(blob) == info.encrypted_size == encrypted_size(len(data), chunk_size)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    chunks = _decrypt(blob)
    assert b"".join(chunks) == data
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size or data == b""


@settings(database=None, max_examples=100, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=800),
    chunk_size=st.integers(min_value=16, max_value=200),
    position=st.integers(min_value=0),
    bit=st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]),
)
def test_stream_any_flip_fails_property(
    data: bytes, chunk_size: int, position: int, bit: int
) -> None:
    blob, _ = _encrypt(data, chunk_size=chunk_size)
    tampered = bytearray(blob)
    tampered[position % len(blob)] ^= bit
    with pytest.raises(DecryptionError):
        _decrypt(bytes(tampered))
