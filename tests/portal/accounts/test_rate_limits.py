"""Brute force and enumeration: failed sign-ins limited per account and per IP on the shared
cache; sign-in and password reset answer the same for unknown addresses."""

from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.core.cache import cache, caches
from django.test import Client

from portal.audit.models import AuditEvent
from tests.personas import Cast
from tests.portal.accounts.helpers import APP, app_post

TOO_MANY = "Too many failed login attempts"
MISMATCH = "The email address and/or password you specified are not correct."


def attempt(email: str, password: str, *, ip: str) -> str:
    response = Client(REMOTE_ADDR=ip).post(
        "/accounts/login/", {"login": email, "password": password}
    )
    if response.status_code == 302:
        return "signed in"
    body = response.content.decode()
    if TOO_MANY in body:
        return "locked"
    assert MISMATCH in body
    return "wrong"


def redis_keys(pattern: str) -> list[bytes]:
    return list(redis.Redis.from_url(settings.REDIS_URL).scan_iter(match=pattern))


def test_the_limits_are_configured_per_ip_and_per_account() -> None:
    assert settings.ACCOUNT_RATE_LIMITS["login_failed"] == "10/m/ip,5/5m/key"


@pytest.mark.django_db
def test_failed_sign_ins_lock_the_account_whatever_the_ip(cast: Cast) -> None:
    email = cast.user("provider").email

    results = [attempt(email, "wrong password here", ip=f"10.0.0.{n}") for n in range(1, 6)]
    locked = attempt(email, cast["provider"].password, ip="10.0.0.99")

    assert results == ["wrong"] * 5
    assert locked == "locked"
    # Another account from the same addresses is not affected.
    assert attempt(cast.user("colleague").email, cast["colleague"].password, ip="10.0.0.1") == (
        "signed in"
    )
    lockout = AuditEvent.objects.filter(action="auth.lockout").get()
    assert lockout.actor == cast.user("provider")
    assert lockout.outcome == "denied"
    assert lockout.ip == "10.0.0.99"
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5


@pytest.mark.django_db
def test_failed_sign_ins_lock_the_ip_whatever_the_account(cast: Cast) -> None:
    results = [
        attempt(f"nobody{n}@example.org", "wrong password here", ip="192.0.2.7") for n in range(10)
    ]
    same_ip = attempt(cast.user("provider").email, cast["provider"].password, ip="192.0.2.7")
    other_ip = attempt(cast.user("provider").email, cast["provider"].password, ip="192.0.2.8")

    assert results == ["wrong"] * 10
    assert same_ip == "locked"
    assert other_ip == "signed in"


@pytest.mark.django_db
def test_a_successful_sign_in_does_not_reset_the_count(cast: Cast) -> None:
    email = cast.user("provider").email
    for n in range(4):
        assert attempt(email, "wrong password here", ip=f"10.1.0.{n}") == "wrong"
    assert attempt(email, cast["provider"].password, ip="10.1.0.50") == "signed in"

    assert attempt(email, "wrong password here", ip="10.1.0.51") == "wrong"
    assert attempt(email, cast["provider"].password, ip="10.1.0.52") == "locked"


@pytest.mark.django_db
def test_the_counters_live_in_the_django_cache_under_hashed_keys(cast: Cast) -> None:
    email = cast.user("provider").email
    attempt(email, "wrong password here", ip="10.2.0.1")

    if settings.REDIS_URL:
        keys = [key.decode() for key in redis_keys("*allauth:rl:allauth.account:login_failed:*")]
    else:
        keys = [key for key in cache._cache if "allauth:rl:allauth.account:login_failed:" in key]  # type: ignore[attr-defined]
    assert len(keys) == 2  # one per IP, one per account
    assert not any(email in key or "provider" in key for key in keys)


@pytest.mark.django_db
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (Redis)")
def test_two_web_processes_share_the_counters_through_redis(cast: Cast) -> None:
    """Two cache clients stand for two gunicorn workers: what one counts, the other sees."""
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    email = cast.user("provider").email
    for n in range(5):
        assert attempt(email, "wrong password here", ip=f"10.3.0.{n}") == "wrong"
    # A second, independent cache client (another worker process) reads the same history.
    second_worker = caches.create_connection("default")
    histories = [
        second_worker.get(key.decode().removeprefix("portal:1:"))
        for key in redis_keys("*allauth:rl:allauth.account:login_failed:5/300.0/key:*")
    ]
    assert [len(history) for history in histories] == [5]
    assert attempt(email, cast["provider"].password, ip="10.3.0.200") == "locked"


@pytest.mark.django_db
def test_sign_in_answers_the_same_for_an_unknown_address(cast: Cast) -> None:
    known = Client().post(
        "/accounts/login/", {"login": cast.user("provider").email, "password": "not it at all"}
    )
    unknown = Client().post(
        "/accounts/login/", {"login": "nobody@lakeside.example", "password": "not it at all"}
    )

    assert known.status_code == unknown.status_code == 200
    assert MISMATCH in known.content.decode()
    assert MISMATCH in unknown.content.decode()
    assert known.context["form"].errors == unknown.context["form"].errors


@pytest.mark.django_db
def test_the_app_sign_in_answers_the_same_for_an_unknown_address(cast: Cast) -> None:
    known = app_post(
        Client(), "/auth/login", {"email": cast.user("provider").email, "password": "x" * 12}
    )
    unknown = app_post(
        Client(), "/auth/login", {"email": "nobody@lakeside.example", "password": "x" * 12}
    )

    assert known.status_code == unknown.status_code == 400
    assert known.json() == unknown.json()


@pytest.mark.django_db
def test_password_reset_answers_the_same_for_an_unknown_address(cast: Cast) -> None:
    known = Client().post("/accounts/password/reset/", {"email": cast.user("provider").email})
    after_known = len(mail.outbox)
    unknown = Client().post("/accounts/password/reset/", {"email": "nobody@lakeside.example"})

    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password/reset/done/"
    assert after_known == 1
    assert mail.outbox[0].to == [cast.user("provider").email]
    # Nothing at all goes to an address without an account.
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_app_password_reset_answers_the_same_for_an_unknown_address(cast: Cast) -> None:
    client = Client()
    known = client.post(
        f"{APP}/auth/password/request",
        data={"email": cast.user("provider").email},
        content_type="application/json",
    )
    unknown = client.post(
        f"{APP}/auth/password/request",
        data={"email": "nobody@lakeside.example"},
        content_type="application/json",
    )

    assert known.status_code == unknown.status_code
    assert known.json() == unknown.json()
    assert [message.to for message in mail.outbox] == [[cast.user("provider").email]]
