"""Mandatory MFA: the gate on pages, the API and allauth's headless API; single-use codes; seeds
encrypted at rest; recovery codes shown once."""

from __future__ import annotations

import base64
import json
import re

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from portal.accounts.adapters import MFA_SECRET_ASSOCIATED_DATA
from portal.crypto.errors import DecryptionError
from portal.crypto.values import decrypt_text
from tests.factories import MembershipFactory, UserFactory
from tests.personas import Cast, enrol_totp
from tests.portal.accounts.helpers import (
    app_get,
    app_sign_in,
    sign_in,
    sign_in_persona,
    totp_code,
)

MFA_REQUIRED = "mfa_required"


def unenrolled_user_client() -> tuple[Client, str]:
    user = MembershipFactory.create(user__email="new@lakeside.example").user
    client = Client()
    client.force_login(user)
    return client, user.email


def api_routes() -> list[str]:
    """Every /api/v1/ route with placeholder ids, found in the URL conf (so new ones count)."""
    routes: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            else:
                routes.append(route)

    for top in get_resolver().url_patterns:
        if isinstance(top, URLResolver) and str(top.pattern) == "api/v1/":
            walk(top.url_patterns, "/api/v1/")
    placeholder = re.compile(r"<(?:(\w+):)?(\w+)>")

    def fill(match: re.Match[str]) -> str:
        return "1" if match.group(1) == "int" else "00000000-0000-4000-8000-000000000000"

    return [placeholder.sub(fill, route) for route in routes]


@pytest.mark.django_db
def test_a_signed_in_user_without_mfa_reaches_only_enrolment_and_sign_out() -> None:
    client, _email = unenrolled_user_client()

    for path in ("/", "/accounts/password/change/", "/accounts/sessions/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/accounts/2fa/", path
    for path in ("/accounts/invitations/", "/accounts/members/", "/accounts/email/"):
        assert client.get(path)["Location"] == "/accounts/2fa/", path
    enrolment = client.get("/accounts/2fa/")
    assert enrolment.status_code == 200
    assert "Set up two-factor authentication to continue" in enrolment.content.decode()
    assert client.get("/accounts/2fa/totp/activate/").status_code in {200, 302}
    assert client.get("/accounts/2fa/webauthn/add/").status_code in {200, 302}
    # Static files and probes are never held back.
    assert client.get("/static/portal/portal.css").status_code != 302
    assert client.get("/healthz").status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_enrolment_pages_redirect_to_reauthentication_not_to_the_gate() -> None:
    client, _email = unenrolled_user_client()

    response = client.get("/accounts/2fa/totp/activate/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_every_api_endpoint_but_get_me_answers_mfa_required() -> None:
    client, _email = unenrolled_user_client()

    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["mfa_enabled"] is False
    routes = api_routes()
    assert "/api/v1/me/" in routes
    for route in routes:
        for method in ("get", "post", "patch", "delete"):
            if route == "/api/v1/me/" and method == "get":
                continue
            response = getattr(client, method)(route, data={}, content_type="application/json")
            assert response.status_code == 403, (method, route)
            assert response.json()["code"] == MFA_REQUIRED, (method, route)
            assert "authenticator" in response.json()["detail"]


@pytest.mark.django_db
def test_an_enrolled_user_passes_the_gate(cast: Cast) -> None:
    client = Client()
    client.force_login(cast.user("provider"))

    assert client.get("/").status_code == 200
    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["mfa_enabled"] is True


@pytest.mark.django_db
def test_recovery_codes_alone_do_not_satisfy_the_gate() -> None:
    client, email = unenrolled_user_client()
    user = UserFactory._meta.model.objects.get(email=email)
    RecoveryCodes.activate(user)

    assert client.get("/")["Location"] == "/accounts/2fa/"
    assert client.get("/api/v1/me/").json()["mfa_enabled"] is False


@pytest.mark.django_db
def test_the_headless_api_is_gated_too(cast: Cast) -> None:
    user = MembershipFactory.create(user__email="app@lakeside.example").user
    client = Client()
    token = app_sign_in(client, user.email, cast["provider"].password)

    assert app_get(client, "/auth/session", token).status_code == 200
    setup = app_get(client, "/account/authenticators/totp", token)
    assert setup.status_code == 404
    assert "secret" in setup.json()["meta"]
    for path in ("/auth/sessions", "/account/email", "/account/authenticators/recovery-codes"):
        response = app_get(client, path, token)
        assert response.status_code == 403, path
        assert response.json()["code"] == MFA_REQUIRED
    api = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
    assert api.status_code == 200
    assert api.json()["mfa_enabled"] is False


@pytest.mark.django_db
def test_totp_and_recovery_seeds_are_encrypted_at_rest(cast: Cast) -> None:
    user = cast.user("provider")
    secret = cast["provider"].totp_secret
    recovery = RecoveryCodes.activate(user)
    codes = recovery.generate_codes()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, data FROM mfa_authenticator WHERE user_id = %s ORDER BY type", [user.pk]
        )
        rows = {kind: json.loads(data) if isinstance(data, str) else data for kind, data in cursor}

    raw = json.dumps(rows)
    assert secret not in raw
    assert secret.lower() not in raw.lower()
    assert base64.b32decode(secret).hex() not in raw
    assert not any(code in raw for code in codes)
    assert rows["totp"]["secret"].startswith("v1.")
    assert rows["recovery_codes"]["seed"].startswith("v1.")
    assert (
        decrypt_text(rows["totp"]["secret"], associated_data=MFA_SECRET_ASSOCIATED_DATA) == secret
    )


@pytest.mark.django_db
def test_a_tampered_seed_fails_closed(cast: Cast) -> None:
    authenticator = Authenticator.objects.get(
        user=cast.user("provider"), type=Authenticator.Type.TOTP
    )
    token = authenticator.data["secret"]
    authenticator.data["secret"] = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    authenticator.save(update_fields=["data"])

    with pytest.raises(DecryptionError):
        TOTP(authenticator).validate_code(totp_code(cast["provider"].totp_secret))


@pytest.mark.django_db
def test_a_totp_code_is_accepted_once() -> None:
    user = UserFactory.create()
    secret = enrol_totp(user)
    totp = TOTP(Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP))

    with time_machine.travel(1_900_000_005, tick=False):
        code = totp_code(secret)
        assert totp.validate_code(code) is True
        assert totp.validate_code(code) is False
        assert totp.validate_code("000000" if code != "000000" else "111111") is False


@pytest.mark.django_db
def test_a_reused_code_cannot_sign_in_again(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    with time_machine.travel(1_900_000_005, tick=False):
        first = Client()
        response = sign_in_persona(first, persona)
        assert response.status_code == 302
        assert first.get("/").status_code == 200

        second = Client()
        response = sign_in(second, persona.user.email, persona.password, persona.totp_secret)

    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()
    assert second.get("/").status_code == 302


@pytest.mark.django_db
def test_recovery_codes_are_single_use_and_shown_once(cast: Cast) -> None:
    user = cast.user("provider")
    recovery = RecoveryCodes.activate(user)
    codes = recovery.generate_codes()
    assert len(codes) == 10

    assert RecoveryCodes(recovery.instance).validate_code(codes[0]) is True
    assert RecoveryCodes(recovery.instance).validate_code(codes[0]) is False

    client = Client()
    sign_in_persona(client, cast["provider"])
    # Viewing codes is a sensitive action: allauth asks for the password again first.
    reauthenticate = client.get("/accounts/2fa/recovery-codes/")
    assert reauthenticate["Location"].startswith("/accounts/reauthenticate/")
    client.post(reauthenticate["Location"], {"password": cast["provider"].password})
    first = client.get("/accounts/2fa/recovery-codes/")
    second = client.get("/accounts/2fa/recovery-codes/")
    assert first.status_code == second.status_code == 200
    assert codes[1] in first.content.decode()
    assert codes[1] not in second.content.decode()


@pytest.mark.django_db
def test_enrolling_totp_through_the_pages(cast: Cast) -> None:
    user = MembershipFactory.create(user__email="enrol@lakeside.example").user
    client = Client()
    sign_in(client, user.email, cast["provider"].password)
    response = client.get("/accounts/2fa/totp/activate/")
    client.post(response["Location"], {"password": cast["provider"].password})

    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    assert 'alt="' in page.content.decode()
    secret = page.context["form"].secret
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    codes = client.get("/accounts/2fa/recovery-codes/")
    assert codes.status_code == 200
    unused = RecoveryCodes(
        Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert unused[0] in codes.content.decode()
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me/").json()["mfa_enabled"] is True
