"""validate_upload: size, type by content, polyglots, names, the malware hook; uploads in memory."""

from __future__ import annotations

import logging
import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile, SimpleUploadedFile
from django.test import RequestFactory

from portal.api.errors import exception_handler
from portal.uploads import (
    MAX_NAME_LENGTH,
    OversizedUpload,
    ReceivedUpload,
    ScanResult,
    UploadRejected,
    ValidatedUpload,
    check_file_name,
    not_scanned,
    sanitise_filename,
    validate_upload,
)
from tests.portal.core.test_settings import PRODUCTION_ENVIRONMENT, run_manage
from tests.scanners import EICAR, eicar_scanner


def png_bytes(extra_chunks: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra_chunks
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = png_bytes()
JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\x00" * 64
    + b"\xff\xd9"
)
TEXT = "Referral letter\r\nPHQ-9: 21\n\tindented ✓ Zoë\n".encode()


def upload(data: bytes, name: str, content_type: str = "application/octet-stream") -> Any:
    return SimpleUploadedFile(name, data, content_type=content_type)


def rejected(
    data: bytes, name: str, content_type: str = "application/octet-stream"
) -> UploadRejected:
    with pytest.raises(UploadRejected) as excinfo:
        validate_upload(upload(data, name, content_type))
    return excinfo.value


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "declared", "expected_type", "expected_name"),
    [
        (PDF, "Scan 2026.PDF", "application/pdf", "application/pdf", "Scan 2026.pdf"),
        (PNG, "chart.png", "image/png", "image/png", "chart.png"),
        (JPEG, "photo.jpeg", "image/jpeg", "image/jpeg", "photo.jpeg"),
        (JPEG, "photo.JPG", "image/jpg", "image/jpeg", "photo.jpg"),
        (TEXT, "letter.txt", "text/plain", "text/plain", "letter.txt"),
        (b"\xef\xbb\xbfwith a BOM\n", "bom.txt", "text/plain", "text/plain", "bom.txt"),
        (PDF, "no-extension", "application/octet-stream", "application/pdf", "no-extension.pdf"),
        (TEXT, "notes", "", "text/plain", "notes.txt"),
    ],
)
def test_allowed_files_pass_with_their_content_type_and_a_clean_name(
    data: bytes, name: str, declared: str, expected_type: str, expected_name: str
) -> None:
    file = upload(data, name, declared)

    result = validate_upload(file)

    assert result == ValidatedUpload(
        content_type=expected_type, size=len(data), original_name_sanitised=expected_name
    )
    assert file.tell() == 0


# --- refused ----------------------------------------------------------------------------------


def test_empty_file_is_refused() -> None:
    error = rejected(b"", "empty.txt")
    assert (error.code, error.status_code) == ("empty_file", 400)


def test_over_the_size_limit_is_413(settings: Any) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 100

    error = rejected(b"a" * 101, "big.txt")
    assert (error.code, error.status_code) == ("file_too_large", 413)
    assert validate_upload(upload(b"a" * 100, "ok.txt")).size == 100


def test_the_size_is_measured_not_taken_from_the_client(settings: Any) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 100
    file = upload(b"a" * 150, "liar.txt")
    file.size = 10

    with pytest.raises(UploadRejected) as excinfo:
        validate_upload(file)
    assert excinfo.value.code == "file_too_large"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "setup.exe"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 20, "tool"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00\xff" * 10, "records.zip"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff", "anim.gif"),
        (b"plain text with a NUL \x00 inside", "nul.txt"),
        (b"bell \x07 control", "bell.txt"),
        (b"latin-1 caf\xe9", "latin1.txt"),
        (b"truncated utf-8 \xe2\x9c", "cut.txt"),
    ],
)
def test_other_types_are_415(data: bytes, name: str) -> None:
    error = rejected(data, name)
    assert (error.code, error.status_code) == ("unsupported_type", 415)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<!DOCTYPE html><html><body>hi</body></html>", "page.txt"),
        (b"  <html><script>alert(1)</script>", "page.txt"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image.txt"),
        (b'<?xml version="1.0"?><svg/>', "drawing.txt"),
        (b"#!/bin/sh\nrm -rf /\n", "run.txt"),
        (b"Dear colleague,\n" + b"x" * 70_000 + b"<script>alert(1)</script>\n", "long.txt"),
        (b"%PDF-1.4\n<html><script>alert(1)</script></html>\n%%EOF", "polyglot.pdf"),
        (png_bytes(b"\x00\x00\x00\x10tEXt<script>x</script>"), "polyglot.png"),
        (JPEG[:20] + b"<iframe src=//evil>" + JPEG[20:], "polyglot.jpg"),
    ],
)
def test_web_content_and_polyglots_are_refused(data: bytes, name: str) -> None:
    error = rejected(data, name)
    assert (error.code, error.status_code) == ("active_content", 415)


def test_data_after_the_end_of_a_png_or_pdf_is_refused() -> None:
    assert rejected(PNG + b"PK\x03\x04 appended zip", "x.png").code == "unsupported_type"
    assert rejected(PDF + b"\x00" * 2000, "x.pdf").code == "unsupported_type"


@pytest.mark.parametrize(
    ("data", "name", "declared"),
    [
        (PNG, "scan.pdf", "application/octet-stream"),
        (PDF, "scan.png", "application/octet-stream"),
        (TEXT, "letter.pdf", "application/pdf"),
        (TEXT, "letter.exe", "application/octet-stream"),
        (PDF, "scan.pdf", "image/png"),
        (TEXT, "letter.txt", "text/html"),
        (JPEG, "photo.jpg", "image/svg+xml"),
    ],
)
def test_a_name_or_declared_type_contradicting_the_content_is_415(
    data: bytes, name: str, declared: str
) -> None:
    error = rejected(data, name, declared)
    assert (error.code, error.status_code) == ("type_mismatch", 415)


# --- file names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("../../etc/passwd.txt", None, "passwd.txt"),
        ("C:\\Users\\Dr Smith\\Scan.PDF", None, "Scan.pdf"),
        ("report\u202efdp.exe", None, "reportfdp.exe"),
        ("tab\there\nnewline\x00nul.txt", None, "tabherenewlinenul.txt"),
        ('what?<>:"|*.txt', None, "what_______.txt"),
        ("   ...hidden.txt  ", None, "hidden.txt"),
        ("", "application/pdf", "upload.pdf"),
        ("....", "image/png", "upload.png"),
        ("scan", "image/jpeg", "scan.jpg"),
        ("multi   space\u00a0name.txt", None, "multi space name.txt"),
        ("e\u0301cole.txt", None, "\u00e9cole.txt"),
    ],
)
def test_sanitise_filename(raw: str, content_type: str | None, expected: str) -> None:
    assert sanitise_filename(raw, content_type=content_type) == expected


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = sanitise_filename("a" * 500 + ".pdf")

    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith("a.pdf")


INVALID_NAME = (
    "The file name is not accepted: use a plain file name, without folders or special "
    "characters, and upload it again."
)
# Each kind of path trick, as a client could send it (the parser keeps names as sent).
PATH_TRICKS = {
    "slash": "../../etc/passwd.pdf",
    "absolute": "/etc/shadow.pdf",
    "slash-in-the-middle": "letters/scan.pdf",
    "backslash": "C:\\Users\\x\\scan.pdf",
    "backslash-traversal": "..\\boot.ini",
    "dot-dot": "..",
    "dot": ".",
    "dots-only": "....",
    "dot-dot-padded": " .. ",
    "empty": "",
    "spaces-only": "   ",
    "nul": "a\x00b.pdf",
    "newline": "line\nbreak.pdf",
    "carriage-return": "cr\rname.pdf",
    "tab": "tab\tname.pdf",
    "escape": "\x1b[31mred.pdf",
    "delete": "del\x7f.pdf",
    "c1-control": "next\x85line.pdf",
    "bidi-override": "report\u202efdp.exe.pdf",
    "bidi-isolate": "scan\u2067fdp.exe\u2069.pdf",
    "rtl-mark": "scan\u200f.pdf",
    "zero-width-space": "sc\u200ban.pdf",
    "bom": "\ufeffscan.pdf",
    "lone-surrogate": "scan\ud800.pdf",
    # The same after NFKC: a fullwidth solidus, fullwidth full stops, a two-dot leader.
    "fullwidth-solidus": "etc\uff0fpasswd.pdf",
    "fullwidth-dots": "\uff0e\uff0e",
    "two-dot-leader": "\u2025",
}


@pytest.mark.parametrize("name", PATH_TRICKS.values(), ids=PATH_TRICKS.keys())
def test_a_name_with_a_path_trick_is_refused_without_repeating_it(name: str) -> None:
    with pytest.raises(UploadRejected) as excinfo:
        check_file_name(name)

    error = excinfo.value
    assert (error.code, error.status_code, str(error.detail)) == (
        "invalid_file_name",
        400,
        INVALID_NAME,
    )


@pytest.mark.parametrize("name", PATH_TRICKS.values(), ids=PATH_TRICKS.keys())
def test_validate_upload_refuses_a_path_trick_first(name: str) -> None:
    """Before it reads a byte: a valid PDF does not help, and neither does an empty file."""
    for data in (PDF, b""):
        named = BytesIO(data)
        named.name = name  # a plain file keeps its name as given (an UploadedFile would not)

        with pytest.raises(UploadRejected) as excinfo:
            validate_upload(named)

        assert excinfo.value.code == "invalid_file_name"


def test_the_name_as_sent_is_checked_not_the_display_name() -> None:
    received = ReceivedUpload(
        raw_name="../../etc/passwd.pdf",
        file=BytesIO(PDF),
        field_name="file",
        content_type="application/pdf",
        size=len(PDF),
        charset=None,
    )
    assert received.name == "passwd.pdf"

    with pytest.raises(UploadRejected) as excinfo:
        validate_upload(received)

    assert excinfo.value.code == "invalid_file_name"


@pytest.mark.parametrize(
    ("name", "data", "stored_as"),
    [
        ("résumé 2026.pdf", PDF, "résumé 2026.pdf"),
        ("scan (1).PDF", PDF, "scan (1).pdf"),
        ("e\u0301cole.txt", TEXT, "\u00e9cole.txt"),
        ("\uff53\uff43\uff41\uff4e.pdf", PDF, "\uff53\uff43\uff41\uff4e.pdf"),
        ("گزارش\u200cپزشکی.pdf", PDF, "گزارشپزشکی.pdf"),
        ("Dr. O'Brien's letter.txt", TEXT, "Dr. O'Brien's letter.txt"),
        ("...hidden.txt", TEXT, "hidden.txt"),
        ('what?<>:"|*.txt', TEXT, "what_______.txt"),
        ("<img src=x onerror=alert(1)>.txt", TEXT, "_img src=x onerror=alert(1)_.txt"),
        ("multi   space\u00a0name.txt", TEXT, "multi space name.txt"),
        ("no-extension", PDF, "no-extension.pdf"),
        ("a" * 500 + ".pdf", PDF, "a" * 116 + ".pdf"),
    ],
    ids=[
        "unicode",
        "brackets",
        "decomposed",
        "fullwidth-letters",
        "persian-zwnj",
        "apostrophes",
        "leading-dots",
        "windows-reserved",
        "markup",
        "whitespace",
        "no-extension",
        "very-long",
    ],
)
def test_ordinary_names_pass_and_are_tidied_for_display(
    name: str, data: bytes, stored_as: str
) -> None:
    check_file_name(name)

    result = validate_upload(upload(data, name))

    assert result.original_name_sanitised == stored_as


# --- malware scanning -------------------------------------------------------------------------


def test_the_test_scanner_is_the_configured_one(settings: Any) -> None:
    assert settings.PORTAL_MALWARE_SCANNER == "tests.scanners.eicar_scanner"


@pytest.mark.parametrize("data", [EICAR, b"harmless\n" * 10_000 + EICAR + b"\n"])
def test_an_infected_file_is_refused_and_logged_without_its_name(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    error = rejected(data, "patient-jane-doe.txt", "text/plain")

    assert (error.code, error.status_code) == ("malware_detected", 400)
    (record,) = [r for r in caplog.records if r.getMessage() == "security.malware_detected"]
    assert record.signature == "Eicar-Test-Signature"  # type: ignore[attr-defined]
    assert "jane" not in caplog.text


def test_a_failing_scanner_fails_closed_with_503(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PORTAL_MALWARE_SCANNER = "tests.scanners.failing_scanner"

    error = rejected(TEXT, "letter.txt")

    assert (error.code, error.status_code) == ("scan_failed", 503)
    assert "security.malware_scan_failed" in caplog.text
    assert "clamd" not in caplog.text


def test_without_a_configured_scanner_uploads_are_refused(settings: Any) -> None:
    settings.PORTAL_MALWARE_SCANNER = ""  # the production default

    error = rejected(PDF, "scan.pdf")

    assert (error.code, error.status_code) == ("scanner_not_configured", 503)


def test_not_scanned_passes_and_says_so(settings: Any) -> None:
    settings.PORTAL_MALWARE_SCANNER = "portal.uploads.not_scanned"

    assert not_scanned(BytesIO(EICAR)) == ScanResult(clean=True, scanned=False)
    assert validate_upload(upload(EICAR, "eicar.txt")).content_type == "text/plain"


def test_the_scanner_sees_the_whole_file_from_the_start() -> None:
    file = upload(b"x" * 200_000, "big.txt")
    file.read(1000)

    assert eicar_scanner(BytesIO(b"x" * 200_000)) == ScanResult(clean=True)
    assert validate_upload(file).size == 200_000


def test_rejections_map_to_the_api_error_shape() -> None:
    response = exception_handler(UploadRejected("The file is empty.", "empty_file"), {})
    too_large = exception_handler(UploadRejected("Too large.", "file_too_large"), {})

    assert response is not None
    assert too_large is not None
    assert (response.status_code, response.data) == (
        400,
        {"detail": "The file is empty.", "code": "empty_file"},
    )
    assert too_large.status_code == 413


# --- uploads stay in memory (no plaintext temporary file) -------------------------------------


def parse_upload(*files: tuple[str, bytes]) -> dict[str, Any]:
    fields = {}
    for index, (name, data) in enumerate(files):
        handle = BytesIO(data)
        handle.name = name
        fields[f"file{index}"] = handle
    request = RequestFactory().post("/upload", data=fields)
    return dict(request.FILES.items())


@pytest.fixture
def no_temporary_files(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Path:
    """Any attempt to spool an upload to a temporary file fails the test."""
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr("django.core.files.temp.NamedTemporaryFile", refuse)
    return spool


def test_uploads_above_djangos_memory_threshold_stay_in_memory(
    no_temporary_files: Path, settings: Any
) -> None:
    data = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024) + b"\n%%EOF\n"
    assert len(data) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE

    (file,) = parse_upload(("scan.pdf", data)).values()

    assert isinstance(file, InMemoryUploadedFile)
    assert file.read() == data
    assert list(no_temporary_files.iterdir()) == []


def test_djangos_default_handlers_would_have_used_a_temporary_file(
    no_temporary_files: Path, settings: Any
) -> None:
    settings.FILE_UPLOAD_HANDLERS = [
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]

    with pytest.raises(AssertionError, match="temporary file"):
        parse_upload(("scan.pdf", b"x" * (3 * 1024 * 1024)))


def test_a_25_mib_upload_is_accepted_in_memory_and_one_byte_more_is_413(
    no_temporary_files: Path, settings: Any
) -> None:
    limit = settings.PORTAL_UPLOAD_MAX_BYTES
    assert limit == 25 * 1024 * 1024

    (at_limit,) = parse_upload(("letter.txt", b"a" * limit)).values()
    assert isinstance(at_limit, InMemoryUploadedFile)
    assert validate_upload(at_limit).size == limit
    del at_limit

    (over,) = parse_upload(("letter.txt", b"a" * (limit + 1))).values()
    assert isinstance(over, OversizedUpload)
    assert over.size == limit + 1
    with pytest.raises(UploadRejected) as excinfo:
        validate_upload(over)
    assert (excinfo.value.code, excinfo.value.status_code) == ("file_too_large", 413)
    with pytest.raises(UploadRejected):
        over.read()


def test_the_files_of_one_request_are_capped_together(
    no_temporary_files: Path, settings: Any
) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 1000
    settings.PORTAL_UPLOAD_MAX_REQUEST_BYTES = 1500

    files = parse_upload(("a.txt", b"a" * 900), ("b.txt", b"b" * 900))

    assert isinstance(files["file0"], InMemoryUploadedFile)
    assert isinstance(files["file1"], OversizedUpload)
    with pytest.raises(UploadRejected, match="together") as excinfo:
        validate_upload(files["file1"])
    assert excinfo.value.status_code == 413


def test_logging_of_rejections_never_includes_content(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    rejected(b"<html>secret-phi-marker</html>", "phi.txt")

    assert "secret-phi-marker" not in caplog.text


def test_production_has_no_default_scanner_and_development_skips_knowingly() -> None:
    show = "from django.conf import settings; print(repr(settings.PORTAL_MALWARE_SCANNER))"

    production = run_manage("shell", "-c", show, environment=PRODUCTION_ENVIRONMENT)
    development = run_manage("shell", "-c", show, environment={"DJANGO_ENV": "development"})

    assert production.stdout.splitlines()[-1] == "''", production.stderr
    assert development.stdout.splitlines()[-1] == "'portal.uploads.not_scanned'", development.stderr
