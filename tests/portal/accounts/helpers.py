"""Signing in the way people and apps do: allauth's forms and headless API, with real TOTP codes."""

from __future__ import annotations

import json
import time
from typing import Any

from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import Client

from tests.personas import Persona

TOTP_PERIOD_SECONDS = 30
APP = "/_allauth/app/v1"
BROWSER = "/_allauth/browser/v1"


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The 6-digit code an authenticator app shows for ``secret`` now (or at ``at``)."""
    counter = int(time.time() if at is None else at) // TOTP_PERIOD_SECONDS
    return format_hotp_value(hotp_value(secret, counter))


def sign_in(client: Client, email: str, password: str, totp_secret: str = "") -> Any:
    """Sign in through allauth's pages: password, then the TOTP step when enrolled."""
    response = client.post("/accounts/login/", {"login": email, "password": password})
    if totp_secret and response.status_code == 302 and "2fa" in response["Location"]:
        response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(totp_secret)})
    return response


def sign_in_persona(client: Client, persona: Persona) -> Any:
    assert persona.user is not None
    return sign_in(client, persona.user.email, persona.password, persona.totp_secret)


def app_post(client: Client, path: str, data: dict[str, Any], token: str = "") -> Any:
    headers = {"X-Session-Token": token} if token else {}
    return client.post(
        APP + path, data=json.dumps(data), content_type="application/json", headers=headers
    )


def app_get(client: Client, path: str, token: str = "") -> Any:
    headers = {"X-Session-Token": token} if token else {}
    return client.get(APP + path, headers=headers)


def app_sign_in(client: Client, email: str, password: str, totp_secret: str = "") -> str:
    """Sign in over allauth's headless app API; returns the session token."""
    response = app_post(client, "/auth/login", {"email": email, "password": password})
    token = str(response.json()["meta"]["session_token"])
    if totp_secret:
        assert response.status_code == 401, response.json()
        response = app_post(
            client, "/auth/2fa/authenticate", {"code": totp_code(totp_secret)}, token
        )
        token = str(response.json()["meta"]["session_token"])
    assert response.status_code == 200, response.json()
    return token
