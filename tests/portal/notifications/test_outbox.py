"""The outbox: each e-mail is recorded first, sent at most once, retried, and re-driven."""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery.exceptions import Retry
from django.conf import settings
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.celery import app as celery_app
from portal.notifications import services, tasks
from portal.notifications.models import EmailDelivery, EmailMode, Notification
from portal.notifications.retry import MAX_ATTEMPTS, is_transient, retry_delay
from portal.notifications.services import notification_preference_update
from portal.schedule import BEAT_SCHEDULE
from tests.personas import Cast
from tests.portal.notifications.backends import FlakyBackend
from tests.portal.notifications.conftest import Notify

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def pending_delivery(cast: Cast, notify_committed: Notify, monkeypatch: Any) -> EmailDelivery:
    """A recorded delivery whose enqueue was lost (the broker refused it)."""
    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", broker_down)
    notify_committed(recipients=[cast.user("provider")])
    monkeypatch.undo()
    return EmailDelivery.objects.get()


def broker_down(*args: Any, **kwargs: Any) -> None:
    raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def pending_and_logged(caplog: pytest.LogCaptureFixture) -> list[EmailDelivery]:
    """Both deliveries still pending, nothing sent, and one warning naming them both."""
    deliveries = list(EmailDelivery.objects.order_by("pk"))
    assert [delivery.status for delivery in deliveries] == ["pending", "pending"]
    assert mail.outbox == []
    [record] = [r for r in caplog.records if r.getMessage() == "notifications.enqueue_failed"]
    assert record.deliveries == [delivery.pk for delivery in deliveries]  # type: ignore[attr-defined]
    assert record.error == "OperationalError"  # type: ignore[attr-defined]
    return deliveries


@pytest.fixture
def in_process_retries() -> Iterator[None]:
    """Eager tasks retry in-process (at once) as a worker would after the countdown.

    With propagation on (the test default) an eager retry is raised to the caller instead.
    """
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


# --- sending once ----------------------------------------------------------------------------


def test_running_the_send_task_twice_sends_one_e_mail(cast: Cast, notify_committed: Notify) -> None:
    notify_committed(recipients=[cast.user("provider")])
    delivery = EmailDelivery.objects.get()
    sent_at = delivery.sent_at

    tasks.send_email_delivery.delay(delivery.pk)
    tasks.send_email_delivery.apply(args=(delivery.pk,))

    delivery.refresh_from_db()
    assert len(mail.outbox) == 1
    assert (delivery.status, delivery.attempts, delivery.sent_at) == ("sent", 1, sent_at)


def test_several_deliveries_are_one_publish_fanned_out_by_the_worker(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    """A request talks to the broker once however many people it notifies; the fan-out task then
    gives each delivery its own send task (and its own retries)."""
    published: list[tuple[str, Any]] = []
    fan_out, send_one = (
        tasks.send_email_deliveries.apply_async,
        tasks.send_email_delivery.apply_async,
    )

    def record(name: str, original: Any) -> Any:
        def publish(args: Any = None, kwargs: Any = None, **options: Any) -> Any:
            published.append((name, args))
            return original(args, kwargs, **options)

        return publish

    monkeypatch.setattr(tasks.send_email_deliveries, "apply_async", record("many", fan_out))
    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", record("one", send_one))
    recipients = [cast.user(name) for name in ("provider", "colleague", "staff")]

    notify_committed(recipients=recipients)

    ids = list(EmailDelivery.objects.order_by("pk").values_list("pk", flat=True))
    assert len(ids) == 3
    assert published == [("many", (ids,)), *(("one", (pk,)) for pk in ids)]
    assert sorted(message.to[0] for message in mail.outbox) == sorted(u.email for u in recipients)
    assert set(EmailDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_single_delivery_is_published_as_its_own_send_task(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tasks.send_email_deliveries, "apply_async", broker_down)

    notify_committed(recipients=[cast.user("provider")])

    assert EmailDelivery.objects.get().status == "sent"
    assert len(mail.outbox) == 1


def test_the_broker_down_for_the_fan_out_publish_keeps_every_row_pending(
    cast: Cast, notify_committed: Notify, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tasks.send_email_deliveries, "apply_async", broker_down)

    with caplog.at_level(logging.WARNING):
        notify_committed(recipients=[cast.user("provider"), cast.user("colleague")])

    pending_and_logged(caplog)


def test_a_delivery_claimed_by_another_worker_is_left_alone(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    EmailDelivery.objects.filter(pk=delivery.pk).update(status="sending", attempts=1)

    tasks.send_email_delivery.delay(delivery.pk)

    delivery.refresh_from_db()
    assert mail.outbox == []
    assert (delivery.status, delivery.attempts) == ("sending", 1)


def test_an_unknown_delivery_id_does_nothing() -> None:
    tasks.send_email_delivery.delay(987654)

    assert mail.outbox == []


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("in_process_retries")
def test_a_transient_smtp_failure_is_retried_by_the_task_and_recorded(
    cast: Cast, notify_committed: Notify, flaky_mail: type[FlakyBackend], monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    flaky_mail.failures = [smtplib.SMTPServerDisconnected("Connection unexpectedly closed")]

    tasks.send_email_delivery.delay(delivery.pk)

    delivery.refresh_from_db()
    assert flaky_mail.calls == 2
    assert len(mail.outbox) == 1
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "sent",
        2,
        "SMTPServerDisconnected",
    )


def test_the_task_asks_the_worker_to_retry_after_the_recorded_backoff(
    cast: Cast, notify_committed: Notify, flaky_mail: type[FlakyBackend], monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    flaky_mail.failures = [ConnectionResetError(104, "Connection reset by peer")]

    with time_machine.travel(NOW, tick=False), pytest.raises(Retry) as retry:
        tasks.send_email_delivery.apply(args=(delivery.pk,), throw=True)

    delivery.refresh_from_db()
    assert retry.value.when == 60
    assert isinstance(retry.value.exc, ConnectionResetError)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        "pending",
        1,
        NOW + timedelta(seconds=60),
    )


def test_a_transient_failure_right_after_commit_leaves_the_row_for_the_re_drive(
    cast: Cast,
    notify_committed: Notify,
    flaky_mail: type[FlakyBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky_mail.failures = [smtplib.SMTPServerDisconnected("Connection unexpectedly closed")]

    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.WARNING):
        notify_committed(recipients=[cast.user("provider")])
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "notifications.enqueue_failed" not in caplog.messages
    assert "notifications.email_retry" in caplog.messages

    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        tasks.redrive_pending_deliveries.delay()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1


def test_a_transient_failure_puts_the_row_back_with_a_backoff_and_re_raises(
    cast: Cast, notify_committed: Notify, flaky_mail: type[FlakyBackend], monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    flaky_mail.failures = [
        smtplib.SMTPResponseException(421, b"4.7.0 Try again later"),
        ConnectionRefusedError(111, "Connection refused"),
    ]

    with time_machine.travel(NOW, tick=False):
        with pytest.raises(smtplib.SMTPResponseException):
            services.email_delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "pending",
            1,
            "SMTPResponseException 421",
        )
        assert delivery.next_attempt_at == NOW + timedelta(seconds=60)

        with pytest.raises(ConnectionRefusedError):
            services.email_delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "pending",
            2,
            "ConnectionRefusedError 111",
        )
        assert delivery.next_attempt_at == NOW + timedelta(seconds=120)
    assert mail.outbox == []


@pytest.mark.usefixtures("in_process_retries")
def test_the_smtp_server_down_for_every_attempt_ends_failed_after_the_bounded_retries(
    cast: Cast, notify_committed: Notify, flaky_mail: type[FlakyBackend], monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    flaky_mail.failures = [TimeoutError("timed out") for _attempt in range(10)]

    tasks.send_email_delivery.delay(delivery.pk)

    delivery.refresh_from_db()
    assert flaky_mail.calls == MAX_ATTEMPTS == 6
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        6,
        "TimeoutError",
    )
    assert delivery.sent_at is None
    assert mail.outbox == []
    # Failed is final: neither the task nor the re-drive tries it again.
    tasks.send_email_delivery.delay(delivery.pk)
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        assert services.email_deliveries_redrive() == []
    assert flaky_mail.calls == 6


def test_a_permanent_refusal_is_marked_failed_without_a_retry(
    cast: Cast, notify_committed: Notify, flaky_mail: type[FlakyBackend]
) -> None:
    provider = cast.user("provider")
    flaky_mail.failures = [
        smtplib.SMTPRecipientsRefused({provider.email: (550, b"5.1.1 User unknown")})
    ]

    notify_committed(recipients=[provider])

    delivery = EmailDelivery.objects.get()
    assert flaky_mail.calls == 1
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        "SMTPRecipientsRefused",
    )
    assert provider.email not in delivery.last_error


def test_a_recipient_deactivated_before_the_send_gets_no_e_mail(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    cast.user("provider").__class__.objects.filter(pk=delivery.recipient_id).update(is_active=False)

    tasks.send_email_delivery.delay(delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "DeliveryImpossible")
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (smtplib.SMTPServerDisconnected("closed"), True),
        (smtplib.SMTPConnectError(421, b"busy"), True),
        (smtplib.SMTPDataError(451, b"local error"), True),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"mailbox busy")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"no such user")}), False),
        (smtplib.SMTPSenderRefused(553, b"sender refused", "portal@example.org"), False),
        (smtplib.SMTPDataError(554, b"rejected"), False),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), False),
        (ConnectionResetError(104, "reset"), True),
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (TimeoutError("timed out"), True),
        (ValueError("bad header"), False),
    ],
)
def test_which_errors_are_worth_another_try(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_the_backoff_doubles_from_a_minute_up_to_fifteen() -> None:
    assert [retry_delay(attempt).total_seconds() for attempt in range(1, 7)] == [
        60,
        120,
        240,
        480,
        900,
        900,
    ]


# --- the broker down, and the re-drive ---------------------------------------------------------


def test_the_broker_down_at_write_time_loses_nothing_and_the_re_drive_sends_once(
    cast: Cast, notify_committed: Notify, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider, colleague = cast.user("provider"), cast.user("colleague")
    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", broker_down)

    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.WARNING):
        created = notify_committed(recipients=[provider, colleague])

    assert len(created) == 2
    deliveries = pending_and_logged(caplog)

    # The broker is back; the periodic job leaves rows younger than a minute to their own task.
    monkeypatch.undo()
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        tasks.redrive_pending_deliveries.delay()
    assert mail.outbox == []

    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        tasks.redrive_pending_deliveries.delay()
        tasks.redrive_pending_deliveries.delay()
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        tasks.redrive_pending_deliveries.delay()
    for delivery in deliveries:
        tasks.send_email_delivery.delay(delivery.pk)

    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [provider.email, colleague.email]
    )
    assert list(EmailDelivery.objects.values_list("status", "attempts")) == [
        ("sent", 1),
        ("sent", 1),
    ]


def test_the_broker_down_during_the_re_drive_keeps_the_row_for_the_next_round(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    with time_machine.travel(NOW, tick=False):
        delivery = pending_delivery(cast, notify_committed, monkeypatch)
    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", broker_down)

    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        assert services.email_deliveries_redrive() == [delivery.pk]
    # Leased for five minutes: the next rounds leave it alone, then try it again.
    with time_machine.travel(NOW + timedelta(minutes=6), tick=False):
        assert services.email_deliveries_redrive() == []
    monkeypatch.undo()
    with time_machine.travel(NOW + timedelta(minutes=7, seconds=1), tick=False):
        assert services.email_deliveries_redrive() == [delivery.pk]

    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert len(mail.outbox) == 1


def test_the_re_drive_waits_for_the_backoff_of_a_failed_attempt(
    cast: Cast, notify_committed: Notify, monkeypatch: Any, flaky_mail: type[FlakyBackend]
) -> None:
    with time_machine.travel(NOW, tick=False):
        delivery = pending_delivery(cast, notify_committed, monkeypatch)
        flaky_mail.failures = [smtplib.SMTPServerDisconnected("closed")]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            services.email_delivery_send(delivery_id=delivery.pk)

    with time_machine.travel(NOW + timedelta(seconds=59), tick=False):
        assert services.email_deliveries_redrive() == []
    with time_machine.travel(NOW + timedelta(seconds=60), tick=False):
        assert services.email_deliveries_redrive() == [delivery.pk]

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1


def test_the_re_drive_works_in_bounded_batches_oldest_first(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tasks.send_email_delivery, "apply_async", broker_down)
    with time_machine.travel(NOW, tick=False):
        notify_committed(recipients=[cast.user("provider")])
    with time_machine.travel(NOW + timedelta(seconds=1), tick=False):
        notify_committed(recipients=[cast.user("colleague"), cast.user("staff")])
    oldest_first = list(
        EmailDelivery.objects.order_by("next_attempt_at", "pk").values_list("pk", flat=True)
    )
    monkeypatch.setattr(services, "enqueue_email_deliveries", lambda ids: list(ids))

    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        first = services.email_deliveries_redrive(batch_size=2)
        second = services.email_deliveries_redrive(batch_size=2)

    assert first == oldest_first[:2]
    assert second == oldest_first[2:]


def test_a_row_left_sending_by_a_dead_worker_goes_back_to_pending(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", attempts=1, claimed_at=NOW
    )

    with time_machine.travel(NOW + timedelta(minutes=14), tick=False):
        assert services.email_deliveries_redrive() == []
    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        assert services.email_deliveries_redrive() == [delivery.pk]

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "sent",
        2,
        "interrupted while sending",
    )
    assert len(mail.outbox) == 1


def test_a_row_left_sending_after_its_last_attempt_is_marked_failed(
    cast: Cast, notify_committed: Notify, monkeypatch: Any
) -> None:
    delivery = pending_delivery(cast, notify_committed, monkeypatch)
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", attempts=MAX_ATTEMPTS, claimed_at=NOW
    )

    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        assert services.email_deliveries_redrive() == []

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "interrupted while sending")
    assert mail.outbox == []


# --- the daily digest ------------------------------------------------------------------------


def test_the_digest_sends_one_e_mail_per_user_with_their_own_updates(
    cast: Cast,
    notify_committed: Notify,
    create_digests: Callable[..., list[int]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    provider, colleague, coordinator = (
        cast.user("provider"),
        cast.user("colleague"),
        cast.user("coordinator"),
    )
    for user in (provider, colleague):
        notification_preference_update(actor=user, email_mode=EmailMode.DAILY_DIGEST)
    notify_committed(recipients=[provider, colleague, coordinator], reference="R-2026-00042")
    notify_committed(recipients=[provider], reference="R-2026-00051")
    notify_committed(recipients=[provider], reference="R-2026-00042")
    immediate_count = len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_daily_digests.delay()

    digests = mail.outbox[immediate_count:]
    assert immediate_count == 1  # the coordinator's, at once
    assert sorted(
        (message.to[0], str(message.body).split("\n")[0]) for message in digests
    ) == sorted(
        [
            (
                provider.email,
                "You have 3 updates on referrals R-2026-00042, R-2026-00051. Sign in to view them.",
            ),
            (colleague.email, "You have 1 update on referral R-2026-00042. Sign in to view it."),
        ]
    )
    deliveries = EmailDelivery.objects.filter(kind="digest")
    assert {(d.recipient_id, d.status, d.notifications.count()) for d in deliveries} == {
        (provider.pk, "sent", 3),
        (colleague.pk, "sent", 1),
    }
    today = timezone.localdate().isoformat()
    assert {d.key for d in deliveries} == {
        f"digest:{provider.public_id}:{today}",
        f"digest:{colleague.public_id}:{today}",
    }


def test_the_digest_runs_once_a_day_and_later_updates_wait_for_tomorrow(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    provider = cast.user("provider")
    notification_preference_update(actor=provider, email_mode=EmailMode.DAILY_DIGEST)
    morning = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo(settings.TIME_ZONE))
    with time_machine.travel(morning, tick=False):
        notify_committed(recipients=[provider], reference="R-2026-00042")
        assert len(create_digests()) == 1
        notify_committed(recipients=[provider], reference="R-2026-00051")
        assert create_digests() == []
    assert len(mail.outbox) == 1

    with time_machine.travel(morning + timedelta(days=1), tick=False):
        assert len(create_digests()) == 1

    assert len(mail.outbox) == 2
    assert str(mail.outbox[1].body).startswith("You have 1 update on referral R-2026-00051.")
    assert Notification.objects.filter(email_delivery__isnull=True).count() == 0


def test_updates_read_in_the_portal_are_left_out_of_the_digest(
    cast: Cast, notify_committed: Notify, create_digests: Callable[..., list[int]]
) -> None:
    provider, colleague = cast.user("provider"), cast.user("colleague")
    for user in (provider, colleague):
        notification_preference_update(actor=user, email_mode=EmailMode.DAILY_DIGEST)
    [read] = notify_committed(recipients=[provider], reference="R-2026-00042")
    notify_committed(recipients=[provider], reference="R-2026-00051")
    notify_committed(recipients=[colleague], reference="R-2026-00042")
    services.notification_mark_read(actor=provider, notification=read)
    services.notification_mark_all_read(actor=colleague)

    create_digests()

    [message] = mail.outbox
    assert message.to == [provider.email]
    assert str(message.body).startswith("You have 1 update on referral R-2026-00051.")
    assert EmailDelivery.objects.filter(recipient=colleague).count() == 0


# --- the schedule ----------------------------------------------------------------------------


def test_the_periodic_jobs_are_in_the_one_beat_schedule() -> None:
    assert celery_app.conf.beat_schedule == BEAT_SCHEDULE
    redrive = BEAT_SCHEDULE["notifications-redrive-pending-deliveries"]
    digest = BEAT_SCHEDULE["notifications-send-daily-digests"]
    assert redrive["task"] == tasks.redrive_pending_deliveries.name
    assert redrive["schedule"] == 60.0
    assert digest["task"] == tasks.send_daily_digests.name
    assert digest["schedule"].hour == {7}
    assert digest["schedule"].minute == {0}
    for entry in (redrive, digest):
        assert entry["task"] in celery_app.tasks
