"""Chunked AES-256-GCM file encryption (attachments, report PDFs) with envelope keys.

Encrypted file layout (all integers big-endian)::

    header, HEADER_SIZE = 109 bytes, fixed whatever the KEK id:
      core (16 bytes, never changes after encryption)
        magic          4   b"PCEF"
        version        1   0x01
        chunk_size     4   plaintext bytes per chunk (every chunk but the last is full)
        nonce_prefix   7   random per file
      key block (93 bytes, replaced by rotation)
        kek_id_len     1
        kek_id        32   ASCII, zero padded
        wrap_nonce    12
        wrapped_dek   48   DEK sealed under the KEK, with its tag
    chunks: AES-GCM(DEK, nonce, plaintext chunk, chunk_aad) = ciphertext || 16-byte tag
      nonce     = nonce_prefix(7) || chunk index(4) || final flag(1: 0x01 last chunk, else 0x00)
      chunk_aad = "portal.crypto/stream-chunk/v1" + length-prefixed(core, associated_data)

The DEK wrap's associated data is the role ``"stream-dek"``, the KEK id and
length-prefixed(core, associated_data), so a header pasted onto another file (or the same file
moved to another row) fails. Because the final flag is in the nonce, dropping whole chunks at the
end, reordering chunks or splicing chunks from another file all fail authentication. An empty
file is one final chunk with no plaintext.

Decryption reads at most two encrypted chunks at a time. Chunks are yielded as soon as each one
authenticates, so a consumer may have received earlier chunks before a later chunk raises
``DecryptionError``; see ``decrypt_stream``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.crypto._encoding import length_prefixed, require_bytes
from portal.crypto.envelope import (
    DEK_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    WrappedKey,
    _unwrap_with,
    _wrap_with,
    generate_dek,
)
from portal.crypto.errors import AUTHENTICATION_FAILED, MALFORMED, CryptoError, DecryptionError
from portal.crypto.keyring import Keyring, is_valid_key_id

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "StreamInfo",
    "decrypt_stream",
    "decrypt_stream_to",
    "encrypt_stream",
    "encrypted_size",
    "read_stream_header",
    "rewrap_stream_file",
    "rewrap_stream_header",
    "stream_header_key_id",
]

MAGIC: Final = b"PCEF"
VERSION: Final = 1
DEFAULT_CHUNK_SIZE: Final = 64 * 1024
MIN_CHUNK_SIZE: Final = 1
MAX_CHUNK_SIZE: Final = 4 * 1024 * 1024
NONCE_PREFIX_SIZE: Final = 7
MAX_KEY_ID_SIZE: Final = 32
MAX_CHUNKS: Final = 2**32

_CORE: Final = struct.Struct(">4sBI7s")
_KEY_BLOCK: Final = struct.Struct(f">B{MAX_KEY_ID_SIZE}s{NONCE_SIZE}s{DEK_SIZE + TAG_SIZE}s")
CORE_SIZE: Final = _CORE.size
HEADER_SIZE: Final = _CORE.size + _KEY_BLOCK.size

_ROLE_STREAM_DEK: Final = b"stream-dek"
_CHUNK_DOMAIN: Final = b"portal.crypto/stream-chunk/v1"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What was encrypted or decrypted: plaintext ``size`` and ``sha256`` (hex)."""

    size: int
    sha256: str
    key_id: str
    encrypted_size: int


@dataclass(frozen=True, slots=True)
class _Header:
    core: bytes
    chunk_size: int
    nonce_prefix: bytes
    wrapped: WrappedKey


def encrypted_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Size on disk of a file of ``plaintext_size`` bytes encrypted with ``chunk_size``."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return HEADER_SIZE + plaintext_size + chunks * TAG_SIZE


# --- header -----------------------------------------------------------------------------------


def _pack_key_block(wrapped: WrappedKey) -> bytes:
    key_id = wrapped.key_id.encode("ascii")
    return _KEY_BLOCK.pack(len(key_id), key_id, wrapped.nonce, wrapped.ciphertext)


def _parse_header(header: bytes) -> _Header:
    if not isinstance(header, bytes) or len(header) != HEADER_SIZE:
        raise DecryptionError(MALFORMED)
    core = header[:CORE_SIZE]
    magic, version, chunk_size, nonce_prefix = _CORE.unpack(core)
    if magic != MAGIC or version != VERSION:
        raise DecryptionError(MALFORMED)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError(MALFORMED)
    id_len, padded_id, wrap_nonce, wrapped_dek = _KEY_BLOCK.unpack(header[CORE_SIZE:])
    if not 1 <= id_len <= MAX_KEY_ID_SIZE or any(padded_id[id_len:]):
        raise DecryptionError(MALFORMED)
    try:
        key_id = padded_id[:id_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError(MALFORMED) from None
    if not is_valid_key_id(key_id):
        raise DecryptionError(MALFORMED)
    return _Header(core, chunk_size, nonce_prefix, WrappedKey(key_id, wrap_nonce, wrapped_dek))


def _wrap_context(core: bytes, associated_data: bytes) -> bytes:
    return length_prefixed(core, associated_data)


def _chunk_aad(core: bytes, associated_data: bytes) -> bytes:
    return _CHUNK_DOMAIN + length_prefixed(core, associated_data)


def _chunk_nonce(nonce_prefix: bytes, index: int, final: bool) -> bytes:
    if index >= MAX_CHUNKS:
        raise CryptoError("too many chunks for one stream")
    return nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def read_stream_header(source: BinaryIO) -> bytes:
    """Read and structurally check the header at the current position of ``source``."""
    header = _read_exact(source, HEADER_SIZE)
    _parse_header(header)
    return header


def stream_header_key_id(header: bytes) -> str:
    """The KEK id named by a header (from ``read_stream_header``)."""
    return _parse_header(header).wrapped.key_id


def rewrap_stream_header(keyring: Keyring, header: bytes, *, associated_data: bytes) -> bytes:
    """A header of identical length whose DEK is wrapped under the active KEK.

    Returns ``header`` itself (no work) when it already names the active KEK. Only the key
    block changes, so the new header can overwrite the old one in place (``rewrap_stream_file``)
    or be written followed by the unchanged bytes from ``HEADER_SIZE`` onwards into a new file.
    """
    ad = require_bytes("associated_data", associated_data)
    parsed = _parse_header(header)
    if parsed.wrapped.key_id == keyring.active_key_id:
        return header
    context = _wrap_context(parsed.core, ad)
    dek = _unwrap_with(keyring, parsed.wrapped, role=_ROLE_STREAM_DEK, context=context)
    wrapped = _wrap_with(keyring.active, dek, role=_ROLE_STREAM_DEK, context=context)
    new_header = parsed.core + _pack_key_block(wrapped)
    assert len(new_header) == HEADER_SIZE  # noqa: S101 - layout invariant  # nosec B101
    return new_header


def rewrap_stream_file(keyring: Keyring, fileobj: BinaryIO, *, associated_data: bytes) -> bool:
    """Rewrite, in place, the header of a seekable file opened ``"r+b"``; True if it changed.

    Writes ``HEADER_SIZE`` bytes at offset 0, flushes and fsyncs when the object has a file
    descriptor. The write is small and sector-aligned at the start of the file, but not atomic
    by contract: where a torn write is unacceptable, or the storage cannot update in place,
    write ``rewrap_stream_header(...)`` plus the rest of the old file to a new object and swap.
    """
    fileobj.seek(0)
    header = read_stream_header(fileobj)
    new_header = rewrap_stream_header(keyring, header, associated_data=associated_data)
    if new_header == header:
        return False
    fileobj.seek(0)
    _write_all(fileobj, new_header)
    fileobj.flush()
    try:
        descriptor = fileobj.fileno()
    except (AttributeError, io.UnsupportedOperation):
        descriptor = None
    if descriptor is not None:
        os.fsync(descriptor)
    return True


# --- encrypt / decrypt ------------------------------------------------------------------------


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, looping over short reads; fewer only at end of file."""
    first = source.read(size)
    if first is None:
        raise CryptoError("non-blocking sources are not supported")
    if len(first) == size or not first:
        return bytes(first)
    parts = [first]
    remaining = size - len(first)
    while remaining:
        part = source.read(remaining)
        if part is None:
            raise CryptoError("non-blocking sources are not supported")
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _write_all(dest: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = dest.write(view)
        if written is None or written >= len(view):
            return
        if written <= 0:
            raise CryptoError("the destination accepted no data (non-blocking sinks unsupported)")
        view = view[written:]


def _check_chunk_size(chunk_size: int) -> None:
    if (
        not isinstance(chunk_size, int)
        or isinstance(chunk_size, bool)
        or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE
    ):
        raise ValueError(f"chunk_size must be an int from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}")


def encrypt_stream(
    keyring: Keyring,
    source: BinaryIO,
    dest: BinaryIO,
    *,
    associated_data: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> StreamInfo:
    """Encrypt ``source`` (read to EOF) into ``dest`` under a fresh DEK and the active KEK.

    Holds at most two plaintext chunks in memory. Returns the plaintext size and SHA-256 (hex)
    so the caller can store them and check them on download.
    """
    ad = require_bytes("associated_data", associated_data)
    _check_chunk_size(chunk_size)
    dek = generate_dek()
    nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
    core = _CORE.pack(MAGIC, VERSION, chunk_size, nonce_prefix)
    active = keyring.active
    wrapped = _wrap_with(active, dek, role=_ROLE_STREAM_DEK, context=_wrap_context(core, ad))
    header = core + _pack_key_block(wrapped)
    _write_all(dest, header)

    aead = AESGCM(dek)
    aad = _chunk_aad(core, ad)
    digest = hashlib.sha256()
    size = 0
    written = len(header)
    index = 0
    current = _read_exact(source, chunk_size)
    while True:
        following = _read_exact(source, chunk_size) if len(current) == chunk_size else b""
        final = not following
        digest.update(current)
        size += len(current)
        sealed = aead.encrypt(_chunk_nonce(nonce_prefix, index, final), current, aad)
        _write_all(dest, sealed)
        written += len(sealed)
        if final:
            break
        current = following
        index += 1
    return StreamInfo(
        size=size, sha256=digest.hexdigest(), key_id=active.key_id, encrypted_size=written
    )


def _open(
    keyring: Keyring, source: BinaryIO, associated_data: bytes
) -> tuple[_Header, Iterator[bytes]]:
    ad = require_bytes("associated_data", associated_data)
    header = _parse_header(_read_exact(source, HEADER_SIZE))
    dek = _unwrap_with(
        keyring,
        header.wrapped,
        role=_ROLE_STREAM_DEK,
        context=_wrap_context(header.core, ad),
    )
    chunks = _decrypt_chunks(source, header, AESGCM(dek), _chunk_aad(header.core, ad))
    first = next(chunks)
    return header, _prepend(first, chunks)


def decrypt_stream(
    keyring: Keyring, source: BinaryIO, *, associated_data: bytes
) -> Iterator[bytes]:
    """Decrypt a stream written by ``encrypt_stream``, yielding plaintext chunks.

    The header is read, the DEK unwrapped and the first chunk authenticated before this function
    returns, so a bad header, an unknown KEK, a wrong binding, or any tampering in a file of at
    most one chunk raises ``DecryptionError`` here rather than during iteration. Later chunks are
    authenticated one at a time while iterating; truncation (including at a chunk boundary),
    reordering, splicing and trailing data raise ``DecryptionError`` at the first bad chunk,
    possibly after earlier chunks were yielded. Callers that must not emit any byte of a bad file
    should decrypt to a temporary file first (``decrypt_stream_to``).
    """
    return _open(keyring, source, associated_data)[1]


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _decrypt_chunks(source: BinaryIO, header: _Header, aead: AESGCM, aad: bytes) -> Iterator[bytes]:
    block_size = header.chunk_size + TAG_SIZE
    key_id = header.wrapped.key_id
    index = 0
    block = _read_exact(source, block_size)
    while True:
        following = _read_exact(source, block_size) if len(block) == block_size else b""
        final = not following
        if len(block) < TAG_SIZE:
            raise DecryptionError(MALFORMED, key_id=key_id)
        try:
            plaintext = aead.decrypt(_chunk_nonce(header.nonce_prefix, index, final), block, aad)
        except InvalidTag:
            raise DecryptionError(AUTHENTICATION_FAILED, key_id=key_id) from None
        yield plaintext
        if final:
            return
        block = following
        index += 1


def decrypt_stream_to(
    keyring: Keyring,
    source: BinaryIO,
    dest: BinaryIO,
    *,
    associated_data: bytes,
    expected_sha256: str | None = None,
) -> StreamInfo:
    """Decrypt all of ``source`` into ``dest`` and return the plaintext size and SHA-256.

    With ``expected_sha256`` (64 hex digits) a mismatch raises
    ``DecryptionError("authentication_failed")``. On any ``DecryptionError`` ``dest`` holds
    partial output and must be discarded.
    """
    expected = None
    if expected_sha256 is not None:
        expected = expected_sha256.strip().lower()
        if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
            raise ValueError("expected_sha256 must be 64 hexadecimal digits")
    header, chunks = _open(keyring, source, associated_data)
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        _write_all(dest, chunk)
    hexdigest = digest.hexdigest()
    if expected is not None and not hmac.compare_digest(hexdigest, expected):
        raise DecryptionError(
            AUTHENTICATION_FAILED, "plaintext SHA-256 does not match", key_id=header.wrapped.key_id
        )
    return StreamInfo(
        size=size,
        sha256=hexdigest,
        key_id=header.wrapped.key_id,
        encrypted_size=encrypted_size(size, header.chunk_size),
    )
