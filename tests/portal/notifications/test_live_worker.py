"""With a real worker on the broker: committed notifications are e-mailed, lost enqueues re-driven.

The worker is another process, so the tests look at the outbox rows in the database and at the
files its file-based mail backend writes (EMAIL_URL=filemail://...), not at ``mail.outbox``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.notifications import tasks
from portal.notifications.models import EmailDelivery
from portal.notifications.services import notify
from tests.conftest import LiveWorker, wait_for
from tests.factories import UserFactory
from tests.portal.notifications.conftest import referral_link

pytestmark = pytest.mark.live_worker


@pytest.fixture
def mail_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "mail"
    directory.mkdir()
    # Read by the worker's settings: Django's file-based backend, one file per message. Tests
    # request this fixture before ``live_worker`` so the worker starts with it set.
    # The URL's path loses its first "/", hence four: filemail:////tmp/... is /tmp/....
    monkeypatch.setenv("EMAIL_URL", f"filemail:///{directory}")
    return directory


def sent_messages(directory: Path) -> list[str]:
    return [path.read_text() for path in sorted(directory.iterdir())]


def delivery_status(delivery_id: int) -> str:
    return EmailDelivery.objects.values_list("status", flat=True).get(pk=delivery_id)


def test_a_committed_notify_is_e_mailed_by_the_worker(
    mail_dir: Path, live_worker: LiveWorker
) -> None:
    user = UserFactory.create(email="provider@live.example")
    link = referral_link()

    with transaction.atomic():
        notify(recipients=[user], event="referral.accepted", reference="R-2026-00042", link=link)
    delivery = EmailDelivery.objects.get()

    assert wait_for(lambda: delivery_status(delivery.pk) == "sent", timeout=60), live_worker.log()
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_error) == (1, "")
    [message] = sent_messages(mail_dir)
    assert "Subject: Update on referral R-2026-00042" in message
    assert "To: provider@live.example" in message
    # The worker reads SITE_URL from the same environment as this process.
    assert f"\n{settings.SITE_URL.rstrip('/')}{link}\n" in message
    assert "notifications.send_email_delivery" in live_worker.log()


def test_an_enqueue_lost_to_a_broker_outage_is_re_driven_and_sent_once(
    mail_dir: Path, live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory.create(email="colleague@live.example")

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", broker_down)
    with transaction.atomic():
        notify(
            recipients=[user],
            event="referral.accepted",
            reference="R-2026-00051",
            link=referral_link(),
        )
    monkeypatch.undo()
    delivery = EmailDelivery.objects.get()
    assert delivery.status == "pending"
    # The outage lasted a while: the row is older than the re-drive's minute.
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )

    # The broker is back: beat's periodic job runs on the worker and re-enqueues the send.
    tasks.redrive_pending_deliveries.delay()
    tasks.redrive_pending_deliveries.delay()

    assert wait_for(lambda: delivery_status(delivery.pk) == "sent", timeout=60), live_worker.log()
    assert wait_for(lambda: "notifications.redrive_pending_deliveries" in live_worker.log())
    messages = sent_messages(mail_dir)
    assert len(messages) == 1
    assert "Subject: Update on referral R-2026-00051" in messages[0]
    delivery.refresh_from_db()
    assert delivery.attempts == 1
