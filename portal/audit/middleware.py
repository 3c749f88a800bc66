"""Opens an audit scope per request: a request id and the client IP for every audit event."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from portal.audit.context import audit_scope

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is a plain token: it is echoed in a header and stored.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")


def request_id_for(request: HttpRequest) -> str:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    if SANE_REQUEST_ID.fullmatch(supplied):
        return supplied
    return str(uuid.uuid4())


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip_for(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = n > 0 the address the n-th proxy saw.

    Each trusted proxy appends the address it received the request from to X-Forwarded-For, so
    the client is the n-th entry from the right; entries further left are the client's own
    claims and are ignored. Too few entries means a proxy was bypassed: REMOTE_ADDR is used.
    """
    remote = _valid_ip(str(request.META.get("REMOTE_ADDR", "")))
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies <= 0:
        return remote
    forwarded = [
        part for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if part
    ]
    if len(forwarded) < proxies:
        return remote
    return _valid_ip(forwarded[-proxies]) or remote


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_for(request)
        with audit_scope(request_id=request_id, ip=client_ip_for(request)):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
