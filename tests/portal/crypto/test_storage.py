"""Encrypted file storage: round trip, nothing in plaintext on disk, fail closed, bounded memory."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tracemalloc
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from portal.crypto.errors import DecryptionError
from portal.crypto.models import EncryptedFile
from portal.crypto.storage import (
    EncryptedFileMissing,
    StoredFile,
    delete_encrypted_file,
    open_encrypted_file,
    orphaned_files,
    store_encrypted_file,
    stored_file_path,
)
from portal.crypto.streams import DEFAULT_CHUNK_SIZE, HEADER_SIZE

from .conftest import UseKeys
from .helpers import CANARY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("use_keys", "media_root")]

OWNER = "3f2c1a9e-0000-4000-8000-000000000001"
OTHER_OWNER = "3f2c1a9e-0000-4000-8000-000000000002"


def payload(size: int) -> bytes:
    """``size`` bytes with the canary at the start, in the middle and at the end."""
    filler = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    body = bytearray(filler[:size])
    for offset in (0, size // 2, size - len(CANARY)):
        body[offset : offset + len(CANARY)] = CANARY
    return bytes(body)


def store(data: bytes, *, purpose: str = "attachment", owner: str = OWNER) -> StoredFile:
    return store_encrypted_file(BytesIO(data), purpose=purpose, owner_id=owner)


def read(stored: StoredFile, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "purpose": "attachment",
        "owner_id": OWNER,
        "expected_sha256": stored.sha256,
    } | overrides
    with open_encrypted_file(stored.name, **arguments) as stream:
        return b"".join(stream)


def security_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "security.decryption_failed"]


def all_bytes_on_disk(root: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in root.rglob("*") if path.is_file()]


def test_round_trip_over_several_chunks(media_root: Path) -> None:
    data = payload(3 * DEFAULT_CHUNK_SIZE + 123)

    stored = store(data)

    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert read(stored) == data
    record = EncryptedFile.objects.get(name=stored.name)
    assert (record.purpose, record.owner_id, record.size, record.sha256, record.key_id) == (
        "attachment",
        OWNER,
        len(data),
        stored.sha256,
        "k1",
    )


def test_the_file_is_named_randomly_under_its_purpose_with_private_permissions(
    media_root: Path,
) -> None:
    stored = store(b"hello")
    path = stored_file_path(stored.name)

    purpose, leaf = stored.name.split("/")
    assert purpose == "attachment"
    assert len(leaf) == 32
    assert path == media_root / "encrypted" / "attachment" / leaf
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store(b"hello").name != stored.name


def test_no_plaintext_canary_anywhere_on_disk(media_root: Path) -> None:
    for size in (len(CANARY), 10_000, 2 * DEFAULT_CHUNK_SIZE + 7):
        stored = store(payload(size))
        assert read(stored).count(CANARY) >= 1

    files = all_bytes_on_disk(media_root)
    assert len(files) == 3
    for _path, content in files:
        assert CANARY not in content
        assert CANARY.lower() not in content.lower()


def test_empty_file_round_trips() -> None:
    stored = store(b"")

    assert (stored.size, read(stored)) == (0, b"")


def test_a_flipped_byte_fails_before_any_plaintext_is_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = payload(3 * DEFAULT_CHUNK_SIZE)
    stored = store(data)
    path = stored_file_path(stored.name)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + 2 * (DEFAULT_CHUNK_SIZE + 16) + 5] ^= 0x01  # in the last chunk
    path.write_bytes(bytes(raw))

    with pytest.raises(DecryptionError) as excinfo:
        open_encrypted_file(
            stored.name, purpose="attachment", owner_id=OWNER, expected_sha256=stored.sha256
        )

    assert excinfo.value.reason == "authentication_failed"
    (event,) = security_events(caplog)
    assert event.label == f"file:{stored.name}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [1, 16, DEFAULT_CHUNK_SIZE + 16])
def test_a_truncated_file_fails_closed(cut: int, caplog: pytest.LogCaptureFixture) -> None:
    stored = store(payload(2 * DEFAULT_CHUNK_SIZE + 50))
    path = stored_file_path(stored.name)
    path.write_bytes(path.read_bytes()[:-cut])

    with pytest.raises(DecryptionError):
        read(stored)
    assert len(security_events(caplog)) == 1


def test_another_owner_or_purpose_cannot_open_it(caplog: pytest.LogCaptureFixture) -> None:
    stored = store(b"%PDF- for one owner")

    with pytest.raises(DecryptionError):
        read(stored, owner_id=OTHER_OWNER)
    with pytest.raises(DecryptionError):
        read(stored, purpose="report")

    assert len(security_events(caplog)) == 2


def test_a_file_swapped_with_another_of_the_same_owner_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = store(b"first file")
    second = store(b"second file")
    shutil.copyfile(stored_file_path(second.name), stored_file_path(first.name))

    with pytest.raises(DecryptionError):
        read(first)
    assert len(security_events(caplog)) == 1


def test_a_different_expected_hash_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    stored = store(b"content")

    with pytest.raises(DecryptionError, match="SHA-256"):
        read(stored, expected_sha256=hashlib.sha256(b"other").hexdigest())
    assert len(security_events(caplog)) == 1


def test_an_unknown_kek_fails_closed(use_keys: UseKeys, caplog: pytest.LogCaptureFixture) -> None:
    stored = store(b"content")
    use_keys("k2", active="k2")

    with pytest.raises(DecryptionError) as excinfo:
        read(stored)

    assert (excinfo.value.reason, excinfo.value.key_id) == ("unknown_key", "k1")
    assert len(security_events(caplog)) == 1


def test_a_missing_file_raises_missing() -> None:
    stored = store(b"content")
    stored_file_path(stored.name).unlink()

    with pytest.raises(EncryptedFileMissing):
        read(stored)


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "attachment/../../x", "attachment/short", "/abs/" + "a" * 32]
)
def test_names_that_are_not_storage_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an encrypted file name"):
        open_encrypted_file(name, purpose="attachment", owner_id=OWNER, expected_sha256="0" * 64)


@pytest.mark.parametrize(("purpose", "owner"), [("Bad Purpose", OWNER), ("attachment", "a/b")])
def test_bad_purpose_or_owner_is_refused(purpose: str, owner: str) -> None:
    with pytest.raises(ValueError, match="must"):
        store(b"x", purpose=purpose, owner=owner)
    assert EncryptedFile.objects.count() == 0


def test_a_change_in_place_after_verification_stops_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored = store(payload(3 * DEFAULT_CHUNK_SIZE))
    path = stored_file_path(stored.name)
    stream = open_encrypted_file(
        stored.name, purpose="attachment", owner_id=OWNER, expected_sha256=stored.sha256
    )
    first = next(stream)
    with path.open("r+b") as handle:  # overwrite the last chunk in place, same inode
        handle.seek(-10, os.SEEK_END)
        handle.write(b"\x00" * 10)

    with pytest.raises(DecryptionError):
        for _chunk in stream:
            pass

    assert len(first) == DEFAULT_CHUNK_SIZE
    assert len(security_events(caplog)) == 1


def test_delete_removes_the_row_now_and_the_file_on_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    stored = store(b"bye")
    path = stored_file_path(stored.name)

    assert not delete_encrypted_file(stored.name, purpose="attachment", owner_id=OTHER_OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_encrypted_file(stored.name, purpose="attachment", owner_id=OWNER)
        assert path.exists()

    assert not path.exists()
    assert not EncryptedFile.objects.filter(name=stored.name).exists()


def test_orphans_are_files_without_a_registry_row() -> None:
    kept = store(b"kept")
    orphan = store(b"orphan")
    EncryptedFile.objects.filter(name=orphan.name).delete()

    assert orphaned_files() == [orphan.name]
    assert kept.name not in orphaned_files()


class GeneratedSource:
    """A 25 MiB upload produced on the fly, so only what storage itself holds is measured."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.block = hashlib.sha256(CANARY).digest() * 2048  # 64 KiB

    def read(self, size: int = -1) -> bytes:
        size = min(self.remaining, len(self.block) if size < 0 else size)
        self.remaining -= size
        return (self.block * (size // len(self.block) + 1))[:size]


def test_a_25_mb_file_is_streamed_in_chunks_not_held_in_memory() -> None:
    size = 25 * 1024 * 1024
    tracemalloc.start()
    try:
        stored = store_encrypted_file(GeneratedSource(size), purpose="report", owner_id=OWNER)
        _, store_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        digest = hashlib.sha256()
        with open_encrypted_file(
            stored.name, purpose="report", owner_id=OWNER, expected_sha256=stored.sha256
        ) as stream:
            for chunk in stream:
                total += len(chunk)
                digest.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == total == size
    assert digest.hexdigest() == stored.sha256
    # A handful of 64 KiB chunks at most, never the 25 MiB file (let alone twice).
    assert store_peak < 2 * 1024 * 1024, store_peak
    assert read_peak < 2 * 1024 * 1024, read_peak
