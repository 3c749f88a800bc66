"""Pages parse multipart bodies with ``portal.api.parsers.RawNameMultiPartParser``.

Django builds its multipart parser in ``HttpRequest.parse_file_upload``, which the first read of
``request.POST`` or ``request.FILES`` calls, and offers no setting for the class. Django's parser
cuts an upload's name down to its last path component, so a page would store
``../../etc/passwd.pdf`` as ``passwd.pdf``; with the name kept as sent, ``validate_upload``
refuses it (400 ``invalid_file_name``, shown on the form's file field) instead.

The middleware binds a ``parse_file_upload`` to each request that differs from Django's only in
the parser class. It must run before anything reads ``request.POST`` or ``request.FILES``:
``MIDDLEWARE`` lists it right after ``SecurityMiddleware``, ahead of every middleware that could
read the body on its way in (the CSRF middleware reads it in ``process_view``, after all of
them). The API uses the same parser through DRF (``portal.api.parsers.MultiPartParser``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MethodType
from typing import Any, BinaryIO

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.datastructures import ImmutableList, MultiValueDict

from portal.api.parsers import RawNameMultiPartParser


def parse_file_upload_keeping_names(
    request: HttpRequest, meta: Mapping[str, Any], post_data: BinaryIO
) -> tuple[QueryDict, MultiValueDict[str, Any]]:
    """``HttpRequest.parse_file_upload`` (Django 5.2) with ``RawNameMultiPartParser``."""
    request.upload_handlers = ImmutableList(
        request.upload_handlers,
        warning="You cannot alter upload handlers after the upload has been processed.",
    )
    parser = RawNameMultiPartParser(meta, post_data, request.upload_handlers, request.encoding)
    return parser.parse()


class RawUploadNameMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Only multipart POSTs ever call it; binding it always is as cheap as testing for them.
        request.parse_file_upload = MethodType(  # type: ignore[method-assign]
            parse_file_upload_keeping_names, request
        )
        return self.get_response(request)
