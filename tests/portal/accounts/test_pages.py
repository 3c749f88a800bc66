"""The identity pages: no-store when signed in, strict CSP with no inline script, labelled fields
and one main heading."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.factories import MembershipFactory
from tests.personas import Cast
from tests.portal.accounts.helpers import sign_in_persona


class PageAudit(HTMLParser):
    """Collects what the checks below need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[dict[str, str | None]] = []
        self.event_handlers: list[str] = []
        self.h1_count = 0
        self.label_targets: set[str] = set()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.event_handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script" and "src" not in attributes:
            self.inline_scripts.append(attributes)
        if tag == "h1":
            self.h1_count += 1
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(str(attributes["for"]))
        if tag in {"input", "select", "textarea"}:
            kind = attributes.get("type") or tag
            hidden = kind == "hidden" or "hidden" in attributes
            if not hidden and kind not in {"submit", "button"}:
                self.fields.append((str(attributes.get("id") or ""), str(attributes.get("name"))))


def audit(html: str) -> PageAudit:
    parser = PageAudit()
    parser.feed(html)
    return parser


def assert_accessible_and_csp_safe(html: str, path: str) -> None:
    page = audit(html)
    # Only data blocks (JSON read by a script file) may be inline; nothing executable.
    assert all(script.get("type") == "application/json" for script in page.inline_scripts), path
    assert page.event_handlers == [], path
    assert page.h1_count == 1, path
    for field_id, name in page.fields:
        assert field_id, (path, name)
        assert field_id in page.label_targets, (path, name)


@pytest.mark.django_db
def test_anonymous_pages(cast: Cast) -> None:
    client = Client()
    for path in ("/accounts/login/", "/accounts/password/reset/"):
        response = client.get(path)
        assert response.status_code == 200
        assert_accessible_and_csp_safe(response.content.decode(), path)
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


@pytest.mark.django_db
def test_signed_in_pages_are_never_cached_and_csp_safe(cast: Cast) -> None:
    client = Client()
    sign_in_persona(client, cast["admin"])
    reauthenticate = client.get("/accounts/2fa/recovery-codes/generate/")
    client.post(reauthenticate["Location"], {"password": cast["admin"].password})

    for path in (
        "/",
        "/accounts/2fa/",
        "/accounts/2fa/recovery-codes/generate/",
        "/accounts/2fa/webauthn/add/",
        "/accounts/sessions/",
        "/accounts/password/change/",
        "/accounts/invitations/",
        "/accounts/members/",
        "/api/v1/me/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
        if response["Content-Type"].startswith("text/html"):
            assert_accessible_and_csp_safe(response.content.decode(), path)


@pytest.mark.django_db
def test_the_webauthn_page_loads_its_script_from_static_files(cast: Cast) -> None:
    client = Client()
    sign_in_persona(client, cast["admin"])
    reauthenticate = client.get("/accounts/2fa/webauthn/add/")
    client.post(reauthenticate["Location"], {"password": cast["admin"].password})

    body = client.get("/accounts/2fa/webauthn/add/").content.decode()

    assert '<script src="/static/mfa/js/webauthn.js"></script>' in body
    assert '<script src="/static/account/js/onload.js"></script>' in body


@pytest.mark.django_db
def test_the_totp_enrolment_page_shows_the_qr_code_and_the_key(cast: Cast) -> None:
    user = MembershipFactory.create(user__email="qr@lakeside.example").user
    client = Client()
    client.force_login(user)
    reauthenticate = client.get("/accounts/2fa/totp/activate/")
    client.post(reauthenticate["Location"], {"password": cast["admin"].password})

    response = client.get("/accounts/2fa/totp/activate/")

    body = response.content.decode()
    assert 'src="data:image/svg+xml;base64,' in body
    assert response.context["form"].secret in body
    assert_accessible_and_csp_safe(body, "/accounts/2fa/totp/activate/")
