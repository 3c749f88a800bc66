"""One exception handler: every API error is ``{"detail": ..., "code": ...}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceError(Exception):
    """A business rule refused the operation. Services raise it; the API maps it to 400."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code: str = "invalid"

    def __init__(
        self, detail: Any, *, code: str | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra = extra or {}


class NotFound(ServiceError):
    """Missing, or not visible to this user: the two are never told apart."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"

    def __init__(self, detail: Any = "Not found.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class AttachmentUnavailable(ServiceError):
    """A stored file failed its integrity check: nothing of it is sent (the storage has already
    recorded the security event)."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "attachment_unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.detail, "code": exc.code, **exc.extra}, exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": exc.detail, "code": "invalid"}
    else:
        codes = exc.get_codes()
        response.data = {"detail": exc.detail, "code": codes if isinstance(codes, str) else "error"}
    return response
