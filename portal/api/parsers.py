"""Multipart parsing that keeps upload names as the client sent them.

Django's ``MultiPartParser.sanitize_file_name`` cuts an upload's name down to its last path
component and drops non-printable characters before any view sees it, so ``../../etc/passwd.pdf``
would be stored as ``passwd.pdf``. With the name kept as sent, ``portal.uploads.validate_upload``
refuses a path trick (400 ``invalid_file_name``) instead.

- ``RawNameMultiPartParser``: Django's parser with that step left out; it parses the pages'
  requests (``portal.core.upload_middleware``). It needs ``portal.uploads.MemoryOnlyUploadHandler``
  (``settings.FILE_UPLOAD_HANDLERS``), which keeps the name as sent in ``raw_name`` beside a
  display-safe ``name``.
- ``MultiPartParser``: DRF's, on ``RawNameMultiPartParser``. Every API view that reads multipart
  uses it, and ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]`` names it; the media type, and so the
  OpenAPI schema, are DRF's.

This module is imported while DRF reads its settings, so it imports nothing of the portal's.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import IO, Any

from django.http import multipartparser
from django.utils.datastructures import MultiValueDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles

__all__ = ["MultiPartParser", "RawNameMultiPartParser"]


class RawNameMultiPartParser(multipartparser.MultiPartParser):
    """Django's multipart parser, except that a file's name is kept as the client sent it.

    The name is only HTML-unescaped, as Django does; an absent name still makes the part a plain
    field. The refusal is ``validate_upload``'s.
    """

    def sanitize_file_name(self, file_name: str) -> str | None:
        return html.unescape(file_name) or None

    IE_sanitize = sanitize_file_name


class MultiPartParser(parsers.MultiPartParser):
    """``rest_framework.parsers.MultiPartParser`` keeping upload names as sent."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> DataAndFiles[Any, MultiValueDict]:
        # DRF's own parse(), with the parser class swapped.
        parser_context = parser_context or {}
        request = parser_context["request"]
        # DRF's check that the charset is a text codec (not bz2_codec); not in the stubs yet.
        encoding = parsers.get_encoding(parser_context)  # type: ignore[attr-defined]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            parser = RawNameMultiPartParser(meta, stream, request.upload_handlers, encoding)
            data, files = parser.parse()
        except multipartparser.MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return DataAndFiles(data, files)
