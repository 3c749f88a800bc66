"""Checking uploaded files before they are stored, and keeping them off disk until then.

``validate_upload(uploaded_file)`` is what every upload path calls before
``portal.crypto.storage.store_encrypted_file``:

1. size: at most ``settings.PORTAL_UPLOAD_MAX_BYTES`` (25 MiB by default), not empty;
2. type by content, never by name: a PDF (``%PDF-`` at offset 0 and ``%%EOF`` in the last KiB),
   a PNG (signature, ending with its ``IEND`` chunk), a JPEG (``FF D8 FF``) or plain text (valid
   UTF-8 with no control characters other than tab, CR and LF). Anything else, and anything
   carrying markup a browser would render or execute (HTML, SVG, script tags, PHP) in its first
   8 KiB, or anywhere in a text file, is refused; so are data appended after a PNG's or PDF's
   end (the usual polyglot trick) and files whose name extension or declared content type
   contradicts the content;
3. the file name, as the client sent it: one carrying a path trick is refused (400
   ``invalid_file_name``): a ``/`` or ``\\``, a name of dots only (``.``, ``..``), a control
   character (NUL, newline...), a format character (bidi overrides such as U+202E), or
   nothing but spaces; the same after NFKC, so a fullwidth solidus or a two-dot leader is no
   way round. Any other name is only tidied for display (``sanitise_filename``): NFC,
   ``<>:"|?*`` replaced, whitespace collapsed, capped at 120 characters keeping the extension,
   the right extension appended when it had none. A storage path never comes from the name:
   the encrypted store names files at random;
4. the malware-scan hook ``settings.PORTAL_MALWARE_SCANNER``: a dotted path to a
   ``callable(file) -> ScanResult``. Development defaults to ``portal.uploads.not_scanned``
   (records that nothing was scanned); production has no default and refuses every upload
   (503) until it names a scanner, or names ``portal.uploads.not_scanned`` to run without
   one knowingly.

Every refusal is ``UploadRejected(message, code)``: 413 for size, 415 for type, 503 when the
scanner is unavailable, 400 otherwise, with a message that never repeats the file's name or
content.

``MemoryOnlyUploadHandler`` (``settings.FILE_UPLOAD_HANDLERS``) replaces Django's handlers,
which write any upload above 2.5 MB to a plaintext temporary file: uploads stay in memory up to
the size limit, and a larger one is counted but not kept, so the view sees its real size and
``validate_upload`` answers 413.

Django's multipart parser cuts a file name down to its last path component and drops
non-printable characters before anything else sees it, so ``../../etc/passwd.pdf`` would arrive
as ``passwd.pdf`` and the check in point 3 could never refuse it.
``portal.api.parsers.RawNameMultiPartParser`` keeps the name as sent; it parses the pages'
requests (``portal.core.upload_middleware``) and the API's (``portal.api.parsers``'s
``MultiPartParser``). ``MemoryOnlyUploadHandler`` then gives each file a display-safe ``name``
(``UploadedFile`` would cut it down again, or raise for ``..``) and keeps the name as sent in
``raw_name``, which ``validate_upload`` checks first.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any, Final, Protocol

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest
from django.utils.module_loading import import_string

from portal.api.errors import ServiceError

__all__ = [
    "MemoryOnlyUploadHandler",
    "OversizedUpload",
    "ReceivedUpload",
    "ScanResult",
    "UploadRejected",
    "ValidatedUpload",
    "check_file_name",
    "not_scanned",
    "sanitise_filename",
    "validate_upload",
]

security_logger = logging.getLogger("portal.security")

PDF: Final = "application/pdf"
PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
TEXT: Final = "text/plain"

#: Allowed types: name extensions (the first is appended to names without one) and the
#: declared content types browsers send for them.
EXTENSIONS: Final[dict[str, tuple[str, ...]]] = {
    PDF: (".pdf",),
    PNG: (".png",),
    JPEG: (".jpg", ".jpeg", ".jpe"),
    TEXT: (".txt", ".text"),
}
_DECLARED_ALIASES: Final[dict[str, frozenset[str]]] = {
    PDF: frozenset({PDF, "application/x-pdf"}),
    PNG: frozenset({PNG, "image/x-png"}),
    JPEG: frozenset({JPEG, "image/jpg", "image/pjpeg"}),
    TEXT: frozenset({TEXT}),
}
#: What a browser or client says when it does not know: not a contradiction.
_UNKNOWN_DECLARED: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_HEAD_SIZE: Final = 8192
_TAIL_SIZE: Final = 1024
_READ_SIZE: Final = 64 * 1024
_MARKUP_RE: Final = re.compile(
    rb"<\s*(?:script|html|svg|iframe|body|object|embed|frameset|meta\s+http-equiv)\b"
    rb"|<!doctype\s+html|<\?php|<\?xml-stylesheet",
    re.IGNORECASE,
)
_LEADING_MARKUP_RE: Final = re.compile(rb"\s*<[!?A-Za-z]")
_TEXT_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNSAFE_NAME_CHARS_RE: Final = re.compile(r'[<>:"|?*]')
MAX_NAME_LENGTH: Final = 120
_MAX_EXTENSION_LENGTH: Final = 10

_STATUS_BY_CODE: Final[dict[str, int]] = {
    "file_too_large": 413,
    "unsupported_type": 415,
    "type_mismatch": 415,
    "active_content": 415,
    "scanner_not_configured": 503,
    "scan_failed": 503,
}


class UploadRejected(ServiceError):
    """The upload is refused; ``code`` says why (the status code follows from it)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code)
        self.status_code = _STATUS_BY_CODE.get(code, 400)


@dataclass(frozen=True, slots=True)
class ValidatedUpload:
    """What was found: the content type by content, the size, the sanitised original name."""

    content_type: str
    size: int
    original_name_sanitised: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A malware scanner's verdict. ``signature`` names a detection, never file content."""

    clean: bool
    scanned: bool = True
    signature: str = ""


class Scanner(Protocol):
    def __call__(self, file: IO[bytes], /) -> ScanResult: ...


def not_scanned(file: IO[bytes]) -> ScanResult:
    """The scanner used when none is configured: passes the file, marked as not scanned."""
    return ScanResult(clean=True, scanned=False)


# --- file names -------------------------------------------------------------------------------


#: Characters refused in a name: control (Cc: NUL, newline, DEL...), format (Cf: bidi
#: overrides and isolates, zero-width spaces, soft hyphen...) and lone surrogates, except the
#: two joiners Persian, Indic scripts and emoji sequences need (dropped from the display name).
_REFUSED_NAME_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})
_ALLOWED_FORMAT_CHARS: Final = frozenset({"\u200c", "\u200d"})
_INVALID_NAME_MESSAGE: Final = (
    "The file name is not accepted: use a plain file name, without folders or special "
    "characters, and upload it again."
)


def _has_path_trick(name: str) -> bool:
    if "/" in name or "\\" in name:
        return True
    if set(name.strip()) <= {"."}:
        # Empty, nothing but spaces, or dots only ("." and ".." among them).
        return True
    return any(
        unicodedata.category(ch) in _REFUSED_NAME_CATEGORIES and ch not in _ALLOWED_FORMAT_CHARS
        for ch in name
    )


def check_file_name(name: str) -> None:
    """Refuse (400 ``invalid_file_name``) a name as the client sent it that is a path, a path
    component of dots, empty, or carries control or format (bidi) characters.

    Checked as sent and after NFKC too (a fullwidth solidus, a two-dot leader). The message
    never repeats the name.
    """
    if _has_path_trick(name) or _has_path_trick(unicodedata.normalize("NFKC", name)):
        raise UploadRejected(_INVALID_NAME_MESSAGE, "invalid_file_name")


def sanitise_filename(name: str | None, *, content_type: str | None = None) -> str:
    """A display name safe to store and to put in ``Content-Disposition``.

    Uploads reach it only after ``check_file_name`` accepted the name as sent, so for them it
    is cosmetic; on its own it still makes any string safe. Keeps only the last path component
    (``/`` or ``\\``), drops control, format (bidi overrides such as U+202E) and unassigned
    characters and ``<>:"|?*``, collapses whitespace, strips leading/trailing dots and spaces,
    caps the length at ``MAX_NAME_LENGTH`` keeping the extension, and appends the content
    type's extension when there is none.
    """
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in {"C"})
    text = _UNSAFE_NAME_CHARS_RE.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION_LENGTH or " " in extension:
        stem, extension = text, ""
    extension = f".{extension.lower()}" if extension else ""
    if not extension and content_type in EXTENSIONS:
        extension = EXTENSIONS[content_type][0]
    stem = stem[: MAX_NAME_LENGTH - len(extension)].rstrip(" .") or "upload"
    return stem + extension


# --- content sniffing -------------------------------------------------------------------------


def _read(file: IO[bytes], size: int) -> bytes:
    data = file.read(size)
    if not isinstance(data, bytes):
        raise UploadRejected("The upload could not be read.", "unreadable")
    return data


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    return None


class _Inspection:
    """One pass over the file: size, head, tail, and plain-text validity."""

    def __init__(self, file: IO[bytes], limit: int) -> None:
        self.size = 0
        self.head = b""
        self.tail = b""
        self.text_ok = True
        self.markup_in_text = False
        decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        carry = b""
        first = True
        while chunk := _read(file, _READ_SIZE):
            self.size += len(chunk)
            if self.size > limit:
                raise UploadRejected(_too_large_message(limit), "file_too_large")
            if len(self.head) < _HEAD_SIZE:
                self.head += chunk[: _HEAD_SIZE - len(self.head)]
            self.tail = (self.tail + chunk)[-_TAIL_SIZE:]
            if self.text_ok:
                self._check_text(decoder, chunk, first=first)
            # Markup split across two reads is still found: search the seam too.
            window = carry + chunk
            if self.text_ok and _MARKUP_RE.search(window):
                self.markup_in_text = True
            carry = chunk[-64:]
            first = False
        if self.text_ok:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.text_ok = False

    def _check_text(self, decoder: codecs.IncrementalDecoder, chunk: bytes, *, first: bool) -> None:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError:
            self.text_ok = False
            return
        if first:
            text = text.removeprefix("\ufeff")
        if _TEXT_CONTROL_RE.search(text):
            self.text_ok = False


def _too_large_message(limit: int) -> str:
    return f"The file is larger than the {limit // (1024 * 1024)} MB limit."


def _detect(inspection: _Inspection) -> str:
    head = inspection.head
    detected = _sniff(head)
    if detected is None:
        if not inspection.text_ok:
            raise UploadRejected(
                "Only PDF, PNG, JPEG and plain-text (UTF-8) files can be uploaded.",
                "unsupported_type",
            )
        detected = TEXT
    active = "The file contains web content (HTML, SVG or script), which is not accepted."
    if _MARKUP_RE.search(head):
        raise UploadRejected(active, "active_content")
    if detected == TEXT:
        if head.startswith(b"#!") or _LEADING_MARKUP_RE.match(head.removeprefix(b"\xef\xbb\xbf")):
            raise UploadRejected(active, "active_content")
        if inspection.markup_in_text:
            raise UploadRejected(active, "active_content")
    elif detected == PNG and not inspection.tail.endswith(_PNG_END):
        raise UploadRejected(
            "The PNG image is damaged or carries data after its end.", "unsupported_type"
        )
    elif detected == PDF and b"%%EOF" not in inspection.tail:
        raise UploadRejected(
            "The PDF is damaged or carries data after its end.", "unsupported_type"
        )
    return detected


def _check_declared(detected: str, name: str, declared: str | None) -> None:
    mismatch = UploadRejected(
        "The file's name or declared type does not match its content.", "type_mismatch"
    )
    _, dot, extension = name.rpartition(".")
    if dot and f".{extension.lower()}" not in EXTENSIONS[detected]:
        raise mismatch
    declared_type = (declared or "").split(";")[0].strip().lower()
    if declared_type not in _UNKNOWN_DECLARED and declared_type not in _DECLARED_ALIASES[detected]:
        raise mismatch


# --- malware scanning -------------------------------------------------------------------------


def _scanner() -> Scanner:
    path = getattr(settings, "PORTAL_MALWARE_SCANNER", "")
    if not path:
        raise UploadRejected(
            "Uploads are unavailable: no malware scanner is configured.", "scanner_not_configured"
        )
    scanner: Scanner = import_string(path)
    return scanner


def _scan(file: IO[bytes]) -> ScanResult:
    scanner = _scanner()
    file.seek(0)
    try:
        result = scanner(file)
    except Exception:
        # The scanner's own error may quote the file; log only that it failed.
        security_logger.error("security.malware_scan_failed")
        raise UploadRejected(
            "The file could not be checked for malware; try again later.", "scan_failed"
        ) from None
    finally:
        file.seek(0)
    if not isinstance(result, ScanResult):
        security_logger.error("security.malware_scan_failed")
        raise UploadRejected(
            "The file could not be checked for malware; try again later.", "scan_failed"
        )
    if not result.clean:
        security_logger.warning(
            "security.malware_detected", extra={"signature": result.signature[:200]}
        )
        raise UploadRejected("The file was rejected by the malware scanner.", "malware_detected")
    return result


# --- the entry point --------------------------------------------------------------------------


def validate_upload(uploaded_file: Any) -> ValidatedUpload:
    """Check an uploaded file (a Django ``UploadedFile`` or any seekable binary file with
    ``name``); raise ``UploadRejected`` or return what was found. Leaves the file at offset 0.
    """
    # The name as the client sent it (``raw_name`` from ``MemoryOnlyUploadHandler``), first.
    raw_name = getattr(uploaded_file, "raw_name", None)
    if not isinstance(raw_name, str):
        raw_name = getattr(uploaded_file, "name", None)
    if isinstance(raw_name, str):
        check_file_name(raw_name)
    limit = int(settings.PORTAL_UPLOAD_MAX_BYTES)
    if isinstance(uploaded_file, OversizedUpload):
        raise UploadRejected(uploaded_file.message(limit), "file_too_large")
    declared_size = getattr(uploaded_file, "size", None)
    if isinstance(declared_size, int) and declared_size > limit:
        raise UploadRejected(_too_large_message(limit), "file_too_large")
    file: IO[bytes] = uploaded_file
    file.seek(0)
    try:
        inspection = _Inspection(file, limit)
    finally:
        file.seek(0)
    if inspection.size == 0:
        raise UploadRejected("The file is empty.", "empty_file")
    detected = _detect(inspection)
    name = sanitise_filename(raw_name if isinstance(raw_name, str) else None)
    _check_declared(detected, name, getattr(uploaded_file, "content_type", None))
    _scan(file)
    return ValidatedUpload(
        content_type=detected,
        size=inspection.size,
        original_name_sanitised=sanitise_filename(name, content_type=detected),
    )


# --- keeping uploads off disk -----------------------------------------------------------------


class ReceivedUpload(InMemoryUploadedFile):
    """An upload held in memory: ``name`` is display-safe (``sanitise_filename``), ``raw_name``
    is what the client sent, for ``validate_upload`` to check."""

    def __init__(self, *, raw_name: str, **kwargs: Any) -> None:
        self.raw_name = raw_name
        super().__init__(name=sanitise_filename(raw_name), **kwargs)


class OversizedUpload(UploadedFile):
    """Stands in for an upload that went over the limit: its real ``size``, and no content.

    Reading it raises ``UploadRejected`` so it cannot be stored by mistake. ``raw_name`` is the
    name as sent, ``name`` a display-safe one.
    """

    def __init__(self, *, name: str, content_type: str, size: int, whole_request: bool) -> None:
        self.raw_name = name
        super().__init__(
            BytesIO(), name=sanitise_filename(name), content_type=content_type, size=size
        )
        self.whole_request = whole_request

    def message(self, limit: int) -> str:
        if self.whole_request:
            return "The files in this request are larger than the upload limit together."
        return _too_large_message(limit)

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise UploadRejected(self.message(int(settings.PORTAL_UPLOAD_MAX_BYTES)), "file_too_large")

    def chunks(self, chunk_size: int | None = None) -> Any:
        return self.read()


class MemoryOnlyUploadHandler(FileUploadHandler):
    """Keeps every uploaded file in memory (never a plaintext temporary file on disk).

    A file over ``PORTAL_UPLOAD_MAX_BYTES``, or one that would take the request's files over
    ``PORTAL_UPLOAD_MAX_REQUEST_BYTES``, is counted but not kept: it arrives as an
    ``OversizedUpload`` with its real size, which ``validate_upload`` refuses with 413. Both
    keep the name as sent in ``raw_name`` (``portal.api.parsers.RawNameMultiPartParser`` passes
    it on unchanged).
    """

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.file_limit = int(settings.PORTAL_UPLOAD_MAX_BYTES)
        self.request_limit = int(settings.PORTAL_UPLOAD_MAX_REQUEST_BYTES)
        self.retained = 0
        self.buffer = BytesIO()
        self.received = 0
        self.overflow: str | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = BytesIO()
        self.received = 0
        self.overflow = None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.overflow is None:
            if self.received > self.file_limit:
                self.overflow = "file"
            elif self.retained + len(raw_data) > self.request_limit:
                self.overflow = "request"
            if self.overflow is not None:
                self.retained -= self.buffer.tell()
                self.buffer = BytesIO()
            else:
                self.buffer.write(raw_data)
                self.retained += len(raw_data)
        # Returning None consumes the chunk: no later handler (or temporary file) sees it.
        return None

    def file_complete(self, file_size: int) -> UploadedFile:
        if self.overflow is not None:
            return OversizedUpload(
                name=self.file_name or "",
                content_type=self.content_type or "",
                size=self.received,
                whole_request=self.overflow == "request",
            )
        self.buffer.seek(0)
        return ReceivedUpload(
            file=self.buffer,
            field_name=self.field_name,
            raw_name=self.file_name or "",
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
