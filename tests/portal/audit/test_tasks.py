"""The periodic audit jobs: declared once in the beat schedule; sealing; the nightly check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from celery.schedules import crontab
from django.core import mail
from django.utils import timezone

from portal.audit.models import AuditEvent, AuditSeal
from portal.audit.sealing import audit_seal
from portal.audit.tasks import audit_seal_task, audit_verify_task
from portal.celery import app as celery_app
from portal.notifications.models import Notification
from portal.schedule import BEAT_SCHEDULE
from tests.factories import ClinicFactory, MembershipFactory
from tests.personas import Cast
from tests.portal.audit.helpers import execute, record_events, triggers_disabled


def test_the_audit_jobs_are_in_the_one_beat_schedule() -> None:
    assert BEAT_SCHEDULE["audit-seal"] == {"task": "portal.audit.seal", "schedule": 10.0}
    assert BEAT_SCHEDULE["audit-verify"]["task"] == "portal.audit.verify"
    assert BEAT_SCHEDULE["audit-verify"]["schedule"] == crontab(hour=3, minute=17)
    assert celery_app.conf.beat_schedule is BEAT_SCHEDULE
    assert {"portal.audit.seal", "portal.audit.verify"} <= set(celery_app.tasks)


@pytest.mark.django_db
def test_the_seal_task_links_waiting_events() -> None:
    events = record_events(2)

    audit_seal_task.delay()  # first contact: observes what is there
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        audit_seal_task.delay()  # the grace period has passed for any gap seen before

    assert list(AuditSeal.objects.order_by("position").values_list("event_id", flat=True)) == [
        event.sequence for event in events
    ]


@pytest.mark.django_db
def test_a_nightly_check_of_an_intact_chain_alerts_nobody(cast: Cast) -> None:
    record_events(3)
    audit_seal(gap_grace=timedelta(0))

    audit_verify_task.delay()

    assert Notification.objects.count() == 0
    assert not AuditEvent.objects.filter(action="audit.verify_failed").exists()


@pytest.mark.django_db
def test_a_failed_nightly_check_alerts_the_clinic_admins(
    cast: Cast,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    inactive_admin = MembershipFactory.create(
        organization=ClinicFactory.create(), role="clinic_admin", is_active=False
    )
    events = record_events(3)
    audit_seal(gap_grace=timedelta(0))
    with triggers_disabled():
        execute(
            "UPDATE audit_auditevent SET action = 'referral.read' WHERE sequence = %s",
            [events[1].sequence],
        )

    with (
        caplog.at_level(logging.ERROR, logger="portal.audit"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        audit_verify_task.delay()

    alert = AuditEvent.objects.get(action="audit.verify_failed")
    assert (alert.actor, alert.outcome, alert.details) == (
        None,
        "denied",
        {"kind": "altered", "sequence": events[1].sequence, "unsealed": 0},
    )
    errors = [record.message for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == ["audit.verify_failed"]
    notification = Notification.objects.get()
    assert notification.recipient == cast.user("admin")
    assert inactive_admin.user != notification.recipient
    assert (notification.event, notification.link, notification.urgent) == (
        "audit.verify_failed",
        "/audit/",
        True,
    )
    today = timezone.localdate()
    assert notification.reference == f"AU-{today.year}-{today.timetuple().tm_yday:05d}"
    assert [message.to for message in mail.outbox] == [["admin@cast.example"]]
    # The e-mail names no finding, only the night's reference and the audit page.
    assert mail.outbox[0].body.startswith(
        f"There is an update on record {notification.reference}. Sign in to view it.\n"
    )
    assert "altered" not in mail.outbox[0].body
