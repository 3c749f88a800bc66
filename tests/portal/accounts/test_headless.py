"""allauth's headless API end to end over HTTP, and DRF's two ways in (token and session+CSRF)."""

from __future__ import annotations

import json

import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core import mail
from django.test import Client

from portal.audit.models import AuditEvent
from tests.factories import MembershipFactory
from tests.personas import Cast
from tests.portal.accounts.helpers import (
    BROWSER,
    app_get,
    app_post,
    app_sign_in,
    totp_code,
)

PASSWORD = "correct-horse-battery-staple"


@pytest.mark.django_db(transaction=True)
def test_login_then_totp_enrolment_then_the_token_on_the_api() -> None:
    membership = MembershipFactory.create(user__email="app.user@lakeside.example")
    client = Client()

    login = app_post(client, "/auth/login", {"email": membership.user.email, "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["meta"]["is_authenticated"] is True
    token = login.json()["meta"]["session_token"]
    me = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
    assert me.status_code == 200
    assert me.json()["mfa_enabled"] is False

    setup = app_get(client, "/account/authenticators/totp", token)
    assert setup.status_code == 404
    secret = setup.json()["meta"]["secret"]
    assert setup.json()["meta"]["totp_url"].startswith("otpauth://totp/")
    # Changing MFA needs a fresh re-authentication, as every MFA change does.
    first_try = app_post(client, "/account/authenticators/totp", {"code": totp_code(secret)}, token)
    assert first_try.status_code == 401
    assert {"id": "reauthenticate"} in first_try.json()["data"]["flows"]
    reauthenticated = app_post(client, "/auth/reauthenticate", {"password": PASSWORD}, token)
    assert reauthenticated.status_code == 200
    activated = app_post(client, "/account/authenticators/totp", {"code": totp_code(secret)}, token)
    assert activated.status_code == 200
    assert activated.json()["data"]["type"] == "totp"

    me = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
    assert me.status_code == 200
    assert me.json()["email"] == "app.user@lakeside.example"
    assert me.json()["mfa_enabled"] is True
    assert me.json()["memberships"][0]["organization"] == str(membership.organization.public_id)
    assert Authenticator.objects.filter(user=membership.user, type="totp").count() == 1
    assert AuditEvent.objects.filter(action="auth.mfa_added", actor=membership.user).exists()
    # The person is told by e-mail (no PHI in it) that a second factor was added.
    assert [message.to for message in mail.outbox] == [[membership.user.email]]
    # Enrolled, the rest of the headless account API opens up.
    assert app_get(client, "/auth/sessions", token).status_code == 200


@pytest.mark.django_db
def test_login_then_mfa_authenticate_gives_a_token_for_an_enrolled_user(cast: Cast) -> None:
    persona = cast["clinician"]
    assert persona.user is not None
    client = Client()

    login = app_post(client, "/auth/login", {"email": persona.user.email, "password": PASSWORD})
    assert login.status_code == 401
    flows = login.json()["data"]["flows"]
    assert {"id": "mfa_authenticate", "is_pending": True, "types": ["totp"]} in flows
    pending_token = login.json()["meta"]["session_token"]
    # A half-signed-in token reaches nothing.
    assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=pending_token).status_code == 401

    wrong = app_post(client, "/auth/2fa/authenticate", {"code": "000000"}, pending_token)
    assert wrong.status_code == 400
    done = app_post(
        client,
        "/auth/2fa/authenticate",
        {"code": totp_code(persona.totp_secret)},
        pending_token,
    )
    assert done.status_code == 200
    token = done.json()["meta"]["session_token"]
    assert token != pending_token

    me = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
    assert me.status_code == 200
    assert me.json()["mfa_enabled"] is True
    assert me.json()["memberships"][0]["role"] == "clinician"
    assert me["Cache-Control"] == "no-store, private"
    assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=pending_token).status_code == 401


@pytest.mark.django_db
def test_an_unknown_token_is_a_401() -> None:
    response = Client().get("/api/v1/me/", HTTP_X_SESSION_TOKEN="not-a-session")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Session-Token"


@pytest.mark.django_db
def test_browser_clients_use_the_session_with_csrf_enforced(cast: Cast) -> None:
    persona = cast["coordinator"]
    assert persona.user is not None
    client = Client(enforce_csrf_checks=True)
    config = client.get(f"{BROWSER}/config")
    assert config.status_code == 200
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value

    login = client.post(
        f"{BROWSER}/auth/login",
        data=json.dumps({"email": persona.user.email, "password": PASSWORD}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert login.status_code == 401
    done = client.post(
        f"{BROWSER}/auth/2fa/authenticate",
        data=json.dumps({"code": totp_code(persona.totp_secret)}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert done.status_code == 200
    assert "session_token" not in done.json()["meta"]

    assert client.get("/api/v1/me/").json()["email"] == persona.user.email
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value
    without_token = client.post("/api/v1/me/", data={}, content_type="application/json")
    assert without_token.status_code == 403
    assert "CSRF" in without_token.json()["detail"]
    with_token = client.post(
        "/api/v1/me/", data={}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert with_token.status_code == 405


@pytest.mark.django_db
def test_the_app_token_sign_in_helper_flow_is_what_clients_do(cast: Cast) -> None:
    persona = cast["admin"]
    assert persona.user is not None
    client = Client()

    token = app_sign_in(client, persona.user.email, PASSWORD, persona.totp_secret)

    assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 200
    assert AuditEvent.objects.filter(action="auth.login", actor=persona.user).get().details == {
        "client": "app"
    }
    assert AuditEvent.objects.filter(
        action="auth.mfa_succeeded", actor=persona.user
    ).get().details == {"type": "totp", "reauthentication": False}
