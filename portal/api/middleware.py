"""Hostile request bodies on the JSON endpoints get a 4xx ``{"detail", "code"}``, never a 500.

Two failures happen below any view's own validation, in code the views do not own:

- JSON nested thousands of levels deep makes the decoder (DRF's parser and allauth's headless
  views alike) raise ``RecursionError``, which would be a 500;
- a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` raises ``RequestDataTooBig``, which Django answers
  with its HTML 400 page, unreadable to an API client.

Both reach ``process_exception`` from any view, so one place answers them for ``/api/`` and
``/_allauth/``. Pages keep Django's own handling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

JSON_PATH_PREFIXES = ("/api/", "/_allauth/")
# The C decoder's message; a RecursionError anywhere else is a bug and stays a 500.
JSON_RECURSION_MESSAGE = "while decoding a JSON"


class HostileBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(JSON_PATH_PREFIXES):
            return None
        if isinstance(exception, RecursionError) and JSON_RECURSION_MESSAGE in str(exception):
            logger.warning("request.json_too_deep", extra={"path": request.path})
            return JsonResponse(
                {
                    "detail": "JSON parse error - the body is nested too deeply.",
                    "code": "parse_error",
                },
                status=400,
            )
        if isinstance(exception, RequestDataTooBig):
            logger.warning("request.body_too_large", extra={"path": request.path})
            limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
            return JsonResponse(
                {
                    "detail": f"The request body is larger than the {limit_mb:g} MB limit.",
                    "code": "request_too_large",
                },
                status=413,
            )
        return None
