"""Encrypted file storage for uploads and generated PDFs.

Files live under ``settings.MEDIA_ROOT / "encrypted" / <purpose> / <random name>`` and are
written with ``portal.crypto.streams`` (AES-256-GCM in 64 KiB chunks, each authenticated with
its index): the original file name never reaches the disk, and neither does any plaintext.
A file's associated data binds its storage name (which includes the purpose) and its owner id,
so a file swapped with another, or opened for another owner, fails before a byte is returned.
Pass the ``public_id`` of the row that owns the one file (the attachment, the report) as
``owner_id``, so no two files share a binding.

``store_encrypted_file`` records each file in ``crypto.EncryptedFile`` (no PHI: name, purpose,
owner id, size, SHA-256, KEK id) so ``rotate_keys`` can find it; callers keep ``name``,
``size`` and ``sha256`` on their own row and pass them back to ``open_encrypted_file``.

Reading (``open_encrypted_file``) verifies, then streams: the whole file is decrypted once and
its SHA-256 compared with the one stored at upload, discarding the plaintext chunk by chunk;
only then is it decrypted again, chunk by chunk, for the caller. The alternative, decrypting into
a temporary file and serving that, needs the plaintext somewhere: on disk it breaks the rule that
no plaintext is ever written to disk, and in memory it holds up to 25 MB per download. Verifying
first costs a second AES-GCM pass (tens of milliseconds for 25 MB) and keeps memory at two
chunks. Both passes read the same open file descriptor, so a file replaced in between (by
rotation, which swaps files atomically) cannot mix two versions; the second pass still
authenticates every chunk and re-checks the hash, failing closed if anything changed in place.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Final, Protocol, cast

from django.conf import settings
from django.db import transaction

from portal.crypto.envelope import associated_data
from portal.crypto.errors import AUTHENTICATION_FAILED, CryptoError, DecryptionError
from portal.crypto.keys import keyring
from portal.crypto.models import EncryptedFile
from portal.crypto.streams import (
    HEADER_SIZE,
    decrypt_stream,
    decrypt_stream_to,
    encrypt_stream,
    read_stream_header,
    rewrap_stream_header,
    stream_header_key_id,
)
from portal.crypto.values import report_decryption_failure

__all__ = [
    "EncryptedFileMissing",
    "EncryptedFileStream",
    "StoredFile",
    "delete_encrypted_file",
    "encrypted_root",
    "file_associated_data",
    "open_encrypted_file",
    "orphaned_files",
    "reencrypt_stored_file",
    "rewrap_stored_file",
    "store_encrypted_file",
    "stored_file_path",
]

PURPOSE_PATTERN: Final = r"[a-z0-9][a-z0-9_-]{0,39}"
_PURPOSE_RE: Final = re.compile(PURPOSE_PATTERN)
_NAME_RE: Final = re.compile(rf"(?P<purpose>{PURPOSE_PATTERN})/(?P<leaf>[A-Za-z0-9_-]{{32}})")
_OWNER_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_COPY_CHUNK: Final = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class EncryptedFileMissing(CryptoError):
    """No file under this name: deleted, never written, or the storage volume is missing."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What the caller keeps on its own row: the storage name and the plaintext size/SHA-256."""

    name: str
    size: int
    sha256: str


def encrypted_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "encrypted"


def _check_purpose(purpose: str) -> str:
    if not isinstance(purpose, str) or not _PURPOSE_RE.fullmatch(purpose):
        raise ValueError(f"purpose must match {PURPOSE_PATTERN}")
    return purpose


def _check_owner(owner_id: str) -> str:
    if not isinstance(owner_id, str) or not _OWNER_RE.fullmatch(owner_id):
        raise ValueError("owner_id must be 1-64 characters of [A-Za-z0-9_.:-] (a public id)")
    return owner_id


def file_associated_data(name: str, owner_id: str) -> bytes:
    """Binds a file to its storage name (purpose included) and its owner."""
    return associated_data("crypto", "encryptedfile", name, owner_id)


def stored_file_path(name: str) -> Path:
    """Where the file named ``name`` lives; ``ValueError`` for anything but a storage name."""
    match = _NAME_RE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError("not an encrypted file name")
    return encrypted_root() / match["purpose"] / match["leaf"]


def _label(name: str) -> str:
    return f"file:{name}"


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a new file next to ``path`` (mode 0600), fsync it, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def store_encrypted_file(fileobj: Readable, *, purpose: str, owner_id: str) -> StoredFile:
    """Encrypt ``fileobj`` (read from the start to EOF, in chunks) into the encrypted storage.

    Call it inside the service's transaction: the registry row rolls back with it (the file
    then stays on disk unreferenced, reported by ``rotate_keys`` as an orphan).
    """
    _check_purpose(purpose)
    _check_owner(owner_id)
    seek = getattr(fileobj, "seek", None)
    if callable(seek):
        seek(0)
    name = f"{purpose}/{secrets.token_urlsafe(24)}"
    path = stored_file_path(name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    source = cast(BinaryIO, fileobj)
    infos = []

    def write(handle: BinaryIO) -> None:
        infos.append(
            encrypt_stream(
                keyring(), source, handle, associated_data=file_associated_data(name, owner_id)
            )
        )

    _write_atomically(path, write)
    info = infos[0]
    try:
        EncryptedFile.objects.create(
            name=name,
            purpose=purpose,
            owner_id=owner_id,
            size=info.size,
            sha256=info.sha256,
            key_id=info.key_id,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredFile(name=name, size=info.size, sha256=info.sha256)


class _DiscardSink:
    """A write-only sink for the verification pass: plaintext goes nowhere."""

    def write(self, data: bytes | memoryview) -> int:
        return len(data)


class EncryptedFileStream(Iterator[bytes]):
    """Plaintext chunks of a verified encrypted file; close it (or exhaust it) when done.

    Django's ``StreamingHttpResponse``/``FileResponse`` close it after sending. ``size`` and
    ``sha256`` describe the plaintext. A failure while iterating (the file changed in place
    after verification) raises ``DecryptionError`` after recording a security event.
    """

    def __init__(
        self, handle: IO[bytes], chunks: Iterator[bytes], *, name: str, size: int, sha256: str
    ) -> None:
        self._handle = handle
        self._chunks = chunks
        self._digest = hashlib.sha256()
        self._name = name
        self.size = size
        self.sha256 = sha256

    def __iter__(self) -> EncryptedFileStream:
        return self

    def __next__(self) -> bytes:
        if self._handle.closed:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.close()
            if not hmac.compare_digest(self._digest.hexdigest(), self.sha256):
                error = DecryptionError(AUTHENTICATION_FAILED, "plaintext SHA-256 does not match")
                report_decryption_failure(error, label=_label(self._name))
                raise error from None
            raise
        except DecryptionError as error:
            self.close()
            report_decryption_failure(error, label=_label(self._name))
            raise
        self._digest.update(chunk)
        return chunk

    def read_all(self) -> bytes:
        """Everything at once: only for small files and tests."""
        return b"".join(self)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> EncryptedFileStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_encrypted_file(
    name: str, *, purpose: str, owner_id: str, expected_sha256: str
) -> EncryptedFileStream:
    """Verify the file against ``expected_sha256``, then return its plaintext chunks.

    Raises ``DecryptionError`` (after recording a security event) when the file was tampered
    with, belongs to another owner or purpose, names an unknown KEK, or its hash differs;
    ``EncryptedFileMissing`` when there is no such file. Nothing is returned in those cases.
    """
    _check_purpose(purpose)
    _check_owner(owner_id)
    path = stored_file_path(name)
    if not name.startswith(f"{purpose}/"):
        error = DecryptionError(AUTHENTICATION_FAILED, "the file belongs to another purpose")
        report_decryption_failure(error, label=_label(name))
        raise error
    ad = file_associated_data(name, owner_id)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise EncryptedFileMissing("no encrypted file under this name") from None
    try:
        info = decrypt_stream_to(
            keyring(),
            cast(BinaryIO, handle),
            cast(BinaryIO, _DiscardSink()),
            associated_data=ad,
            expected_sha256=expected_sha256,
        )
        handle.seek(0)
        chunks = decrypt_stream(keyring(), cast(BinaryIO, handle), associated_data=ad)
    except DecryptionError as error:
        handle.close()
        report_decryption_failure(error, label=_label(name))
        raise
    except BaseException:
        handle.close()
        raise
    return EncryptedFileStream(handle, chunks, name=name, size=info.size, sha256=info.sha256)


def delete_encrypted_file(name: str, *, purpose: str, owner_id: str) -> bool:
    """Remove the registry row now and the file once the transaction commits.

    Returns False when no such file is registered for this purpose and owner.
    """
    _check_purpose(purpose)
    _check_owner(owner_id)
    path = stored_file_path(name)
    deleted, _ = EncryptedFile.objects.filter(
        name=name, purpose=purpose, owner_id=owner_id
    ).delete()
    if not deleted:
        return False
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
    return True


# --- rotation -------------------------------------------------------------------------------


def rewrap_stored_file(record: EncryptedFile) -> bool:
    """Re-wrap the file's data key under the active KEK; True if the file changed.

    The new header and the unchanged chunks go to a new file that atomically replaces the old
    one, so a reader never sees a torn header. The registry's ``key_id`` is updated only if it
    still names the key the file was on (compare-and-set), making reruns no-ops.
    """
    path = stored_file_path(record.name)
    ad = file_associated_data(record.name, record.owner_id)
    ring = keyring()
    with path.open("rb") as source:
        header = read_stream_header(cast(BinaryIO, source))
        new_header = rewrap_stream_header(ring, header, associated_data=ad)
        changed = new_header != header
        if changed:

            def write(handle: BinaryIO) -> None:
                handle.write(new_header)
                source.seek(HEADER_SIZE)
                while chunk := source.read(_COPY_CHUNK):
                    handle.write(chunk)

            _write_atomically(path, write)
    EncryptedFile.objects.filter(pk=record.pk, key_id=record.key_id).update(
        key_id=stream_header_key_id(new_header)
    )
    return changed


class _ChunkReader:
    """Adapts an iterator of byte chunks to ``read(n)`` for ``encrypt_stream``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def reencrypt_stored_file(record: EncryptedFile) -> None:
    """Replace the file's data key: decrypt and encrypt again under a fresh DEK, atomically.

    The plaintext only passes through memory, chunk by chunk; the result must hash to the
    registered SHA-256 or nothing is replaced.
    """
    path = stored_file_path(record.name)
    ad = file_associated_data(record.name, record.owner_id)
    ring = keyring()
    infos: list[Any] = []
    with path.open("rb") as source:
        try:
            chunks = decrypt_stream(ring, cast(BinaryIO, source), associated_data=ad)

            def write(handle: BinaryIO) -> None:
                info = encrypt_stream(
                    ring, cast(BinaryIO, _ChunkReader(chunks)), handle, associated_data=ad
                )
                if not hmac.compare_digest(info.sha256, record.sha256):
                    raise DecryptionError(AUTHENTICATION_FAILED, "plaintext SHA-256 does not match")
                infos.append(info)

            _write_atomically(path, write)
        except DecryptionError as error:
            report_decryption_failure(error, label=_label(record.name))
            raise
    EncryptedFile.objects.filter(pk=record.pk).update(key_id=infos[0].key_id)


def orphaned_files() -> list[str]:
    """Storage names of files on disk with no registry row (left by rolled-back writes)."""
    root = encrypted_root()
    if not root.is_dir():
        return []
    on_disk = []
    for directory in sorted(root.iterdir()):
        if not directory.is_dir() or not _PURPOSE_RE.fullmatch(directory.name):
            continue
        for path in sorted(directory.iterdir()):
            name = f"{directory.name}/{path.name}"
            if _NAME_RE.fullmatch(name):
                on_disk.append(name)
    registered = set(EncryptedFile.objects.filter(name__in=on_disk).values_list("name", flat=True))
    return [name for name in on_disk if name not in registered]
