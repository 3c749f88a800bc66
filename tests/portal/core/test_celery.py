"""The Celery configuration, eager mode, on-commit enqueueing and a real worker on the broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerOperationalError

from portal.celery import app as celery_app
from portal.core.models import HealthPing
from portal.core.queue import enqueue_on_commit
from portal.core.tasks import health_ping
from tests.conftest import LiveWorker, wait_for


def test_celery_is_configured_for_reliable_json_tasks() -> None:
    conf = celery_app.conf

    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == 150
    assert conf.task_soft_time_limit == 120


@pytest.mark.django_db
def test_health_ping_writes_one_row_however_often_it_runs() -> None:
    health_ping.delay("ping-1")
    health_ping.delay("ping-1")

    assert list(HealthPing.objects.values_list("token", flat=True)) == ["ping-1"]


@pytest.mark.django_db
def test_tasks_enqueued_on_commit_do_not_run_when_the_transaction_rolls_back(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                enqueue_on_commit(health_ping, "rolled-back")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        with transaction.atomic():
            enqueue_on_commit(health_ping, "committed")

    assert len(callbacks) == 1
    assert list(HealthPing.objects.values_list("token", flat=True)) == ["committed"]


@pytest.mark.live_worker
def test_a_live_worker_runs_the_health_ping_from_the_broker(live_worker: LiveWorker) -> None:
    token = uuid.uuid4().hex

    with transaction.atomic():
        enqueue_on_commit(health_ping, token)

    assert wait_for(lambda: HealthPing.objects.filter(token=token).exists(), timeout=30), (
        live_worker.log()
    )
    ping = HealthPing.objects.get(token=token)
    assert ping.worker != ""
    assert "portal.health_ping" in live_worker.log()


@pytest.mark.django_db
def test_a_broker_outage_after_commit_is_logged_not_raised(
    django_capture_on_commit_callbacks: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise BrokerOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(health_ping, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        HealthPing.objects.create(token="committed-anyway")
        enqueue_on_commit(health_ping, "lost-ping")

    assert HealthPing.objects.filter(token="committed-anyway").exists()
    assert [record.msg for record in caplog.records] == ["queue.enqueue_failed"]
    assert caplog.records[0].ids == ["lost-ping"]  # type: ignore[attr-defined]
