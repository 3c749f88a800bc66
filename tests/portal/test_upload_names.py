"""Upload names reach ``validate_upload`` as the client sent them, on the pages and at the API.

Django's multipart parser would cut ``../../etc/passwd.pdf`` down to ``passwd.pdf`` first, so the
refusal of path tricks (``portal.uploads.check_file_name``) depends on the wiring checked here:
``RawNameMultiPartParser`` for pages (bound by ``RawUploadNameMiddleware``) and for DRF
(``portal.api.parsers.MultiPartParser`` on every view that reads multipart).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.parsers import FileUploadParser, FormParser
from rest_framework.request import Request
from rest_framework.settings import api_settings

from portal.api.parsers import MultiPartParser
from portal.core.upload_middleware import RawUploadNameMiddleware
from portal.uploads import OversizedUpload, ReceivedUpload
from tests.portal.multipart import MULTIPART, multipart_body

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
MIDDLEWARE = "portal.core.upload_middleware.RawUploadNameMiddleware"


def _post(body: bytes) -> HttpRequest:
    request: HttpRequest = RequestFactory().generic("POST", "/upload", body, MULTIPART)
    return request


def _through_middleware(request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    seen: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["parsed"] = (dict(request.POST.items()), dict(request.FILES.items()))
        return HttpResponse()

    RawUploadNameMiddleware(view)(request)
    return seen["parsed"]


@pytest.mark.parametrize(
    ("sent", "raw_name", "display_name"),
    [
        ("../../etc/passwd.pdf", "../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\x\\scan.pdf", "C:\\Users\\x\\scan.pdf", "scan.pdf"),
        ("..", "..", "upload"),
        ("a\x00b.pdf", "a\x00b.pdf", "ab.pdf"),
        ("line\nbreak.pdf", "line\nbreak.pdf", "linebreak.pdf"),
        ("report\u202efdp.exe.pdf", "report\u202efdp.exe.pdf", "reportfdp.exe.pdf"),
        # Unescaped as Django does: the entity is a slash by the time the name is checked.
        ("..&#47;secret.pdf", "../secret.pdf", "secret.pdf"),
        ("résumé 2026.pdf", "résumé 2026.pdf", "résumé 2026.pdf"),
    ],
    ids=["traversal", "windows", "dot-dot", "nul", "newline", "bidi", "entity", "unicode"],
)
def test_the_pages_parser_keeps_the_name_as_sent(
    sent: str, raw_name: str, display_name: str
) -> None:
    post, files = _through_middleware(_post(multipart_body([("file", sent, PDF)], {"a": "b"})))

    file = files["file"]
    assert isinstance(file, ReceivedUpload)
    assert (file.raw_name, file.name, file.read()) == (raw_name, display_name, PDF)
    assert post == {"a": "b"}


def test_without_the_middleware_django_cuts_the_name_down() -> None:
    """Why the middleware exists: Django's own parser leaves nothing to refuse."""
    request = _post(multipart_body([("file", "../../etc/passwd.pdf", PDF)]))

    file = request.FILES["file"]

    assert isinstance(file, ReceivedUpload)
    assert (file.raw_name, file.name) == ("passwd.pdf", "passwd.pdf")


def test_a_part_without_a_file_name_is_still_a_field_as_with_django() -> None:
    body = multipart_body([("file", "", PDF)], {"a": "b"})

    kept = _through_middleware(_post(body))
    django = (dict(_post(body).POST.items()), dict(_post(body).FILES.items()))

    assert kept == django
    assert kept[1] == {}


def test_an_oversized_upload_keeps_its_name_as_sent_too(settings: Any) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 10

    _, files = _through_middleware(_post(multipart_body([("file", "../big.pdf", PDF)])))

    file = files["file"]
    assert isinstance(file, OversizedUpload)
    assert (file.raw_name, file.name) == ("../big.pdf", "big.pdf")


def test_the_api_parser_keeps_the_name_as_sent() -> None:
    request = Request(
        _post(multipart_body([("file", "../../etc/passwd.pdf", PDF)], {"a": "b"})),
        parsers=[MultiPartParser()],
    )

    file = request.FILES["file"]

    assert isinstance(file, ReceivedUpload)
    assert (file.raw_name, file.name) == ("../../etc/passwd.pdf", "passwd.pdf")
    assert request.data["a"] == "b"


# --- wiring -------------------------------------------------------------------------------------


def _views(patterns: list[Any]) -> Iterator[Any]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            yield pattern.callback


def test_every_api_view_reading_multipart_keeps_names_as_sent() -> None:
    readers = []
    for callback in _views(get_resolver().url_patterns):
        view_class: Any = getattr(callback, "cls", None)
        for parser in getattr(view_class, "parser_classes", ()):
            # Django's form parsing (FormParser) and FileUploadParser would bypass the check.
            assert not issubclass(parser, FormParser | FileUploadParser), view_class
            if parser.media_type == "multipart/form-data":
                assert issubclass(parser, MultiPartParser), view_class
                readers.append(view_class.__name__)

    assert {"ReferralAttachmentListApi", "MessageListCreateApi"} <= set(readers), readers


def test_the_default_parsers_keep_names_as_sent() -> None:
    parsers: Sequence[Any] = api_settings.DEFAULT_PARSER_CLASSES
    multipart = [parser for parser in parsers if parser.media_type == "multipart/form-data"]

    assert multipart == [MultiPartParser]


def test_the_middleware_runs_before_anything_can_read_the_body() -> None:
    position = settings.MIDDLEWARE.index(MIDDLEWARE)
    before = set(settings.MIDDLEWARE[:position])

    assert before <= {
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
    }
    assert position < settings.MIDDLEWARE.index("django.middleware.csrf.CsrfViewMiddleware")
