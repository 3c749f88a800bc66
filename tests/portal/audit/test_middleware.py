"""AuditContextMiddleware: request ids (kept only when sane, always echoed) and client IPs."""

from __future__ import annotations

import uuid

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings

from portal.audit.context import AuditContext, current_context
from portal.audit.middleware import AuditContextMiddleware

seen: list[AuditContext | None] = []


def _view(request: HttpRequest) -> HttpResponse:
    seen.append(current_context())
    return HttpResponse("ok")


def _run(**meta: str) -> tuple[HttpResponse, AuditContext]:
    seen.clear()
    request = RequestFactory().get("/")
    request.META.update(meta)
    response = AuditContextMiddleware(_view)(request)
    assert isinstance(response, HttpResponse)
    context = seen[0]
    assert context is not None
    return response, context


def test_a_sane_request_id_is_kept_and_echoed() -> None:
    response, context = _run(HTTP_X_REQUEST_ID="abc123-DEF.456_789")

    assert context.request_id == "abc123-DEF.456_789"
    assert response["X-Request-ID"] == "abc123-DEF.456_789"


@pytest.mark.parametrize(
    "supplied",
    ["short", "x" * 65, "has space inside", "semi;colon-1234", "<script>alert(1)</script>", ""],
)
def test_anything_else_gets_a_new_uuid(supplied: str) -> None:
    response, context = _run(HTTP_X_REQUEST_ID=supplied)

    assert str(uuid.UUID(context.request_id)) == context.request_id
    assert response["X-Request-ID"] == context.request_id


def test_the_scope_ends_with_the_request() -> None:
    _run()

    assert current_context() is None


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    _response, context = _run(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert context.ip == "10.0.0.5"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_with_one_trusted_proxy_the_address_it_saw_is_the_client() -> None:
    _response, context = _run(
        REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9"
    )

    # 198.51.100.1 is what the client claimed; 203.0.113.9 is what the proxy saw.
    assert context.ip == "203.0.113.9"


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_with_two_trusted_proxies_the_outer_proxy_decides() -> None:
    _response, context = _run(
        REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9, 10.0.0.4"
    )

    assert context.ip == "203.0.113.9"


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_too_few_forwarded_entries_fall_back_to_the_peer_address() -> None:
    _response, context = _run(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert context.ip == "10.0.0.5"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_a_forwarded_value_that_is_no_address_falls_back_to_the_peer_address() -> None:
    _response, context = _run(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="not-an-ip")

    assert context.ip == "10.0.0.5"


@pytest.mark.django_db
def test_the_middleware_is_installed_and_echoes_the_id_on_real_responses(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="probe-0000-1111")

    assert response.status_code == 200
    assert response["X-Request-ID"] == "probe-0000-1111"
