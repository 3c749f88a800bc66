from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from portal.core import health


@pytest.mark.django_db
def test_healthz_answers_ok_without_signing_in(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_ready(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = ""

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True}, "failed": []}


@pytest.mark.django_db
def test_readyz_names_an_unreachable_broker(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": True, "broker": False},
        "failed": ["broker"],
    }


class _BrokenConnection:
    def cursor(self) -> Any:
        raise OperationalError("connection refused")


@pytest.mark.django_db
def test_readyz_names_an_unreachable_database(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CELERY_BROKER_URL = ""
    monkeypatch.setattr(health, "connection", _BrokenConnection())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


def test_health_endpoints_refuse_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
