"""Session lifetime (idle 15 minutes, absolute 12 hours) for browser sessions and app tokens, with a
frozen clock; rotation at sign-in; server-side sign-out; the sessions page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client

from portal.audit.models import AuditEvent
from tests.personas import Cast
from tests.portal.accounts.helpers import app_get, app_sign_in, sign_in_persona

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IDLE = timedelta(minutes=15)
ABSOLUTE = timedelta(hours=12)
SECOND = timedelta(seconds=1)


def test_the_limits_are_the_settings() -> None:
    assert settings.SESSION_IDLE_TIMEOUT == IDLE
    assert settings.SESSION_ABSOLUTE_TIMEOUT == ABSOLUTE


@pytest.mark.django_db
def test_a_browser_session_ends_after_15_idle_minutes(cast: Cast) -> None:
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        sign_in_persona(client, cast["provider"])
        session_key = client.session.session_key
        clock.move_to(START + timedelta(minutes=10))
        assert client.get("/").status_code == 200
        clock.move_to(START + timedelta(minutes=10) + IDLE - SECOND)
        assert client.get("/").status_code == 200
        last_activity = START + timedelta(minutes=10) + IDLE - SECOND

        clock.move_to(last_activity + IDLE)
        response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    assert not Session.objects.filter(session_key=session_key).exists()
    assert not UserSession.objects.filter(session_key=session_key).exists()
    event = AuditEvent.objects.filter(action="auth.logout").get()
    assert event.actor == cast.user("provider")
    assert event.details["reason"] == "idle_timeout"
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_a_browser_session_ends_after_12_hours_however_active(cast: Cast) -> None:
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        sign_in_persona(client, cast["provider"])
        moment = START
        while moment + timedelta(minutes=10) < START + ABSOLUTE:
            moment += timedelta(minutes=10)
            clock.move_to(moment)
            assert client.get("/api/v1/me/").status_code == 200, moment
        clock.move_to(START + ABSOLUTE)
        response = client.get("/api/v1/me/")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.details["reason"] == "absolute_timeout"


@pytest.mark.django_db
def test_an_app_token_ends_after_15_idle_minutes(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        token = app_sign_in(client, persona.user.email, persona.password, persona.totp_secret)
        clock.move_to(START + IDLE - SECOND)
        assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 200
        clock.move_to(START + IDLE - SECOND + IDLE)
        response = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)
        headless = app_get(client, "/auth/session", token)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert headless.status_code == 410
    assert not Session.objects.filter(session_key=token).exists()
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.details == {"reason": "idle_timeout", "client": "app"}
    assert event.actor == persona.user


@pytest.mark.django_db
def test_an_app_token_ends_after_12_hours_however_active(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        token = app_sign_in(client, persona.user.email, persona.password, persona.totp_secret)
        moment = START
        while moment + timedelta(minutes=14) < START + ABSOLUTE:
            moment += timedelta(minutes=14)
            clock.move_to(moment)
            assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 200
        clock.move_to(START + ABSOLUTE)
        response = client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token)

    assert response.status_code == 401
    assert AuditEvent.objects.get(action="auth.logout").details["reason"] == "absolute_timeout"


@pytest.mark.django_db
def test_signing_in_rotates_the_session_id(cast: Cast) -> None:
    client = Client()
    client.get("/accounts/login/")
    client.session.save()
    before = client.cookies[settings.SESSION_COOKIE_NAME].value

    sign_in_persona(client, cast["provider"])

    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()


@pytest.mark.django_db
def test_signing_out_ends_the_session_on_the_server(cast: Cast) -> None:
    client = Client()
    sign_in_persona(client, cast["provider"])
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value

    client.post("/accounts/logout/")

    assert not Session.objects.filter(session_key=session_key).exists()
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = session_key
    assert replay.get("/")["Location"].startswith("/accounts/login/")
    assert AuditEvent.objects.get(action="auth.logout").details == {"reason": "user"}


@pytest.mark.django_db
def test_an_app_signs_out_on_the_server(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    client = Client()
    token = app_sign_in(client, persona.user.email, persona.password, persona.totp_secret)

    response = client.delete("/_allauth/app/v1/auth/session", HTTP_X_SESSION_TOKEN=token)

    assert response.status_code == 401
    assert not Session.objects.filter(session_key=token).exists()
    assert client.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 401


@pytest.mark.django_db
def test_the_sessions_page_lists_and_ends_any_session(cast: Cast) -> None:
    persona = cast["provider"]
    assert persona.user is not None
    laptop = Client(HTTP_USER_AGENT="Laptop browser")
    phone = Client(HTTP_USER_AGENT="Phone app")
    with time_machine.travel(START, tick=False) as clock:
        sign_in_persona(laptop, persona)
        # A minute later, with the next TOTP code (a code is accepted once).
        clock.move_to(START + timedelta(minutes=1))
        token = app_sign_in(phone, persona.user.email, persona.password, persona.totp_secret)
        laptop.get("/")

        page = laptop.get("/accounts/sessions/")

        assert page.status_code == 200
        sessions = UserSession.objects.filter(user=persona.user).order_by("created_at")
        assert sessions.count() == 2
        body = page.content.decode()
        assert "Laptop browser" in body
        assert "Phone app" in body
        assert "This session" in body
        app_session = sessions.get(session_key=token)
        response = laptop.post("/accounts/sessions/end/", {"session": app_session.pk})
        assert response.status_code == 302
        assert phone.get("/api/v1/me/", HTTP_X_SESSION_TOKEN=token).status_code == 401
        assert laptop.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.session_ended").count() == 1


@pytest.mark.django_db
def test_nobody_ends_someone_elses_session(cast: Cast) -> None:
    victim = Client()
    sign_in_persona(victim, cast["colleague"])
    victim_session = UserSession.objects.get(user=cast.user("colleague"))
    attacker = Client()
    sign_in_persona(attacker, cast["provider"])

    response = attacker.post("/accounts/sessions/end/", {"session": victim_session.pk})
    missing = attacker.post("/accounts/sessions/end/", {"session": 999_999})
    malformed = attacker.post("/accounts/sessions/end/", {"session": "x"})

    assert response.status_code == missing.status_code == 404
    assert malformed.status_code == 400
    assert UserSession.objects.filter(pk=victim_session.pk).exists()
    assert victim.get("/").status_code == 200


@pytest.mark.django_db
def test_ending_the_current_session_signs_out(cast: Cast) -> None:
    client = Client()
    sign_in_persona(client, cast["provider"])
    current = UserSession.objects.get(user=cast.user("provider"))

    response = client.post("/accounts/sessions/end/", {"session": current.pk})

    assert response.status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/login/")
