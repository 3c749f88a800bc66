"""Authentication events are recorded with actor, IP and time, and never hold a secret."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.test import Client

from portal.audit.models import AuditEvent
from tests.personas import Cast
from tests.portal.accounts.helpers import sign_in_persona, totp_code

START = 1_900_000_000
NEW_PASSWORD = "another long passphrase 2026"


def events() -> list[tuple[str, str, str | None, str]]:
    return [
        (event.action, event.outcome, event.actor.email if event.actor else None, event.ip or "")
        for event in AuditEvent.objects.filter(action__startswith="auth.").order_by("sequence")
    ]


def everything_recorded() -> str:
    return json.dumps(
        [
            [
                event.action,
                event.actor_label,
                event.object_type,
                event.object_id,
                event.request_id,
                event.ip,
                event.details,
            ]
            for event in AuditEvent.objects.all()
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_a_day_of_authentication_leaves_its_events_and_no_secret(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    email = persona.user.email
    client = Client(REMOTE_ADDR="203.0.113.9")
    typed_secrets = ["wrong password here", persona.password, NEW_PASSWORD, "123456"]

    with time_machine.travel(START, tick=False) as clock:
        client.post("/accounts/login/", {"login": email, "password": "wrong password here"})
        client.post(
            "/accounts/login/", {"login": "someone@else.example", "password": "wrong password"}
        )
        client.post("/accounts/login/", {"login": email, "password": persona.password})
        client.post("/accounts/2fa/authenticate/", {"code": "123456"})
        good_code = totp_code(persona.totp_secret)
        typed_secrets.append(good_code)
        client.post("/accounts/2fa/authenticate/", {"code": good_code})
        assert client.get("/").status_code == 200
        clock.move_to(START + 60)
        client.post(
            "/accounts/password/change/",
            {"oldpassword": persona.password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        client.post("/accounts/logout/")

    assert events() == [
        ("auth.login_failed", "denied", email, "203.0.113.9"),
        ("auth.login_failed", "denied", None, "203.0.113.9"),
        ("auth.mfa_failed", "denied", email, "203.0.113.9"),
        ("auth.mfa_succeeded", "allowed", email, "203.0.113.9"),
        ("auth.login", "allowed", email, "203.0.113.9"),
        ("auth.password_changed", "allowed", email, "203.0.113.9"),
        ("auth.logout", "allowed", email, "203.0.113.9"),
    ]
    recorded = everything_recorded()
    for secret in typed_secrets:
        assert secret not in recorded
    assert "someone@else.example" not in recorded
    assert persona.totp_secret not in recorded
    for event in AuditEvent.objects.filter(action__startswith="auth."):
        assert event.occurred_at is not None
        assert event.request_id


@pytest.mark.django_db(transaction=True)
def test_adding_and_removing_an_authenticator_is_recorded(cast: Cast) -> None:
    client = Client()
    sign_in_persona(client, cast["provider"])
    reauthenticate = client.get("/accounts/2fa/totp/deactivate/")
    client.post(reauthenticate["Location"], {"password": cast["provider"].password})

    response = client.post("/accounts/2fa/totp/deactivate/")

    assert response.status_code == 302
    removed = AuditEvent.objects.get(action="auth.mfa_removed")
    assert removed.actor == cast.user("provider")
    assert removed.details == {"type": "totp"}
    # And with no authenticator left, the gate holds the account back again.
    assert client.get("/")["Location"] == "/accounts/2fa/"
