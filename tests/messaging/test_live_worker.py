"""With a real worker on the broker: a sent message's participants are notified by the worker.

The request publishes one task with the message's id; the worker records the in-app
notifications and the outbox rows, and sends the e-mails (Django's file backend, one file each).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from messaging import services
from messaging.models import Message
from portal.notifications.models import EmailDelivery, Notification
from tests.conftest import StartLiveWorker, wait_for
from tests.messaging.conftest import client_for
from tests.personas import Cast

pytestmark = pytest.mark.live_worker

OTHERS_THAN_PROVIDER = sorted(
    f"{name}@cast.example" for name in ("colleague", "staff", "coordinator", "clinician", "admin")
)


def test_a_sent_message_is_announced_by_the_worker_once(
    cast: Cast, start_live_worker: StartLiveWorker, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    thread = services.thread_create(
        actor=cast.user("coordinator"),
        subject="Scheduling",
        body="Opening.",
        practice_id=cast.practice.public_id,
    )
    Notification.objects.all().delete()
    EmailDelivery.objects.all().delete()
    worker = start_live_worker(env={"EMAIL_URL": f"filemail:///{mail_dir}"})

    response = client_for(cast, "provider").post(
        f"/api/v1/threads/{thread.public_id}/messages/", {"body": "Thursday works."}, format="json"
    )

    assert response.status_code == 201, response.content
    message = Message.objects.get(public_id=response.json()["id"])
    assert wait_for(
        lambda: (
            not Message.objects.get(pk=message.pk).notify_pending
            and set(EmailDelivery.objects.values_list("status", flat=True)) == {"sent"}
        ),
        timeout=60,
    ), worker.log()
    assert "messaging.notify_participants" in worker.log()
    assert (
        sorted(Notification.objects.values_list("recipient__email", flat=True))
        == OTHERS_THAN_PROVIDER
    )
    # Django's file backend appends to one file per connection and second, so a file may hold
    # several e-mails: every "To:" line counts.
    mails = "".join(path.read_text() for path in sorted(mail_dir.iterdir()))
    assert (
        sorted(line[4:] for line in mails.splitlines() if line.startswith("To: "))
        == OTHERS_THAN_PROVIDER
    )
    assert "Thursday" not in mails
