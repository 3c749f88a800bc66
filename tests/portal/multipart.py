"""Multipart bodies built by hand, for upload names the test clients would not send.

Django's test client (and DRF's ``APIClient``, which uses it) sends ``os.path.basename`` of a
file's name, and ``SimpleUploadedFile`` keeps only that much too: ``../../etc/passwd.pdf`` would
leave the test as ``passwd.pdf``. ``multipart_body`` writes the name exactly: in a quoted
``filename`` as browsers and curl do, or, for a name a quoted string cannot carry (CR, LF, a
quote), as RFC 2231 ``filename*`` as a client would encode it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

BOUNDARY = "PortalTestBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _filename_parameter(name: str) -> bytes:
    if any(ch in name for ch in '\r\n"'):
        return b"filename*=UTF-8''" + quote(name, safe="").encode()
    return b'filename="' + name.encode() + b'"'


def multipart_body(
    files: Iterable[tuple[str, str, bytes]],
    fields: Mapping[str, str] | None = None,
    *,
    content_type: str = "application/pdf",
) -> bytes:
    """``files`` are ``(field, file name as sent, content)``; ``fields`` plain form fields."""
    parts: list[bytes] = []
    for field, value in (fields or {}).items():
        parts.append(
            b'Content-Disposition: form-data; name="%s"\r\n\r\n%s'
            % (field.encode(), value.encode())
        )
    for field, name, content in files:
        parts.append(
            b'Content-Disposition: form-data; name="%s"; %s\r\nContent-Type: %s\r\n\r\n%s'
            % (field.encode(), _filename_parameter(name), content_type.encode(), content)
        )
    boundary = BOUNDARY.encode()
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + b"--\r\n"
