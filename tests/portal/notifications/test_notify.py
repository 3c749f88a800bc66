"""``notify``: who gets an in-app notification, who gets an e-mail and when, and what is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.api.errors import NotFound, ServiceError
from portal.audit.models import AuditEvent
from portal.notifications.models import (
    EmailDelivery,
    EmailMode,
    Notification,
    NotificationPreference,
)
from portal.notifications.services import (
    notification_mark_read,
    notification_preference_update,
    notify,
)
from tests.factories import UserFactory
from tests.personas import Cast
from tests.portal.notifications.conftest import Notify, referral_link

pytestmark = pytest.mark.django_db


def test_notify_records_one_notification_per_recipient_and_skips_the_actor(
    cast: Cast, notify_committed: Notify
) -> None:
    provider, colleague, coordinator = (
        cast.user("provider"),
        cast.user("colleague"),
        cast.user("coordinator"),
    )
    link = referral_link()

    created = notify_committed(
        recipients=[provider, colleague, coordinator, provider],
        event="referral.accepted",
        reference="R-2026-00042",
        link=link,
        actor=coordinator,
    )

    assert sorted(n.recipient_id for n in created) == sorted([provider.pk, colleague.pk])
    rows = Notification.objects.order_by("recipient_id")
    assert [(n.recipient_id, n.event, n.reference, n.link, n.urgent, n.read_at) for n in rows] == [
        (user.pk, "referral.accepted", "R-2026-00042", link, False, None)
        for user in sorted([provider, colleague], key=lambda user: user.pk)
    ]
    assert not Notification.objects.filter(recipient=coordinator).exists()
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [provider.email, colleague.email]
    )


def test_inactive_recipients_and_an_empty_list_record_nothing(notify_committed: Notify) -> None:
    inactive = UserFactory.create(is_active=False)

    assert notify_committed(recipients=[inactive]) == []
    assert notify_committed(recipients=[]) == []

    assert Notification.objects.count() == 0
    assert EmailDelivery.objects.count() == 0
    assert mail.outbox == []


def test_immediate_preference_records_a_delivery_that_is_sent_on_commit(
    cast: Cast, notify_committed: Notify
) -> None:
    provider = cast.user("provider")

    [notification] = notify_committed(recipients=[provider])

    delivery = EmailDelivery.objects.get()
    assert notification.email_mode == EmailMode.IMMEDIATE
    assert notification.email_delivery_id == delivery.pk
    assert delivery.key == f"notification:{notification.public_id}"
    assert (delivery.recipient_id, delivery.kind, delivery.status, delivery.attempts) == (
        provider.pk,
        EmailDelivery.Kind.IMMEDIATE,
        EmailDelivery.Status.SENT,
        1,
    )
    assert delivery.sent_at is not None
    assert len(mail.outbox) == 1


def test_daily_digest_preference_records_no_delivery_now(
    cast: Cast, notify_committed: Notify
) -> None:
    provider, colleague = cast.user("provider"), cast.user("colleague")
    notification_preference_update(actor=provider, email_mode=EmailMode.DAILY_DIGEST)

    created = notify_committed(recipients=[provider, colleague])

    by_user = {notification.recipient_id: notification for notification in created}
    assert by_user[provider.pk].email_mode == EmailMode.DAILY_DIGEST
    assert by_user[provider.pk].email_delivery_id is None
    assert by_user[colleague.pk].email_mode == EmailMode.IMMEDIATE
    assert list(EmailDelivery.objects.values_list("recipient_id", flat=True)) == [colleague.pk]
    assert [message.to for message in mail.outbox] == [[colleague.email]]


def test_urgent_is_always_e_mailed_at_once_even_to_digest_users(
    cast: Cast, notify_committed: Notify
) -> None:
    coordinator = cast.user("coordinator")
    notification_preference_update(actor=coordinator, email_mode=EmailMode.DAILY_DIGEST)

    [notification] = notify_committed(
        recipients=[coordinator], event="referral.submitted", urgent=True
    )

    assert notification.urgent is True
    assert notification.email_mode == EmailMode.IMMEDIATE
    assert EmailDelivery.objects.get().status == EmailDelivery.Status.SENT
    assert [message.to for message in mail.outbox] == [[coordinator.email]]


def test_nothing_is_recorded_or_sent_when_the_callers_transaction_rolls_back(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    def service_that_fails_after_notifying() -> None:
        with transaction.atomic():
            notify(
                recipients=[cast.user("provider")],
                event="referral.accepted",
                reference="R-2026-00042",
                link=referral_link(),
            )
            raise RuntimeError("the service failed after notifying")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        service_that_fails_after_notifying()

    assert callbacks == []
    assert Notification.objects.count() == 0
    assert EmailDelivery.objects.count() == 0
    assert mail.outbox == []


def test_the_e_mail_is_not_sent_before_the_transaction_commits(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        notify(
            recipients=[cast.user("provider")],
            event="referral.accepted",
            reference="R-2026-00042",
            link=referral_link(),
        )

    assert mail.outbox == []
    assert EmailDelivery.objects.get().status == EmailDelivery.Status.PENDING
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reference", "Jane Doe"),
        ("reference", "R-2026-42"),
        ("reference", "R-2026-00042 Jane Doe"),
        ("reference", "R-2026-00042\n"),
        ("reference", "r-2026-00042"),
        ("reference", ""),
        ("event", "Referral accepted for Jane Doe"),
        ("event", "accepted"),
        ("event", "referral.accepted\nBcc: x@example.org"),
        ("link", "https://evil.example/referrals/"),
        ("link", "//evil.example/"),
        ("link", "/referrals/Jane-Doe/"),
        ("link", "/referrals/?patient=jane"),
        ("link", "/referrals/jane doe/"),
        ("link", "/referrals/%4a/"),
        ("link", "/referrals/../admin/"),
        ("link", "referrals/"),
        ("link", "/" + "a/" * 101),
    ],
)
def test_free_text_in_reference_event_or_link_is_refused(
    cast: Cast, notify_committed: Notify, field: str, value: str
) -> None:
    arguments: dict[str, Any] = {"recipients": [cast.user("provider")], field: value}

    with pytest.raises(ValueError, match=field):
        notify_committed(**arguments)

    assert Notification.objects.count() == 0
    assert EmailDelivery.objects.count() == 0
    assert mail.outbox == []


def test_notify_needs_the_same_few_queries_for_one_recipient_or_twenty(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    def queries_for(recipient_count: int) -> int:
        users = UserFactory.create_batch(recipient_count)
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            notify(
                recipients=users,
                event="referral.accepted",
                reference="R-2026-00042",
                link=referral_link(),
            )
        return len(queries)

    with django_capture_on_commit_callbacks(execute=False):
        one, twenty = queries_for(1), queries_for(20)

    assert one == twenty
    # The preferences, the outbox rows, the notifications, and the test's savepoint opened and
    # released (notify runs in its caller's transaction without a savepoint of its own).
    assert twenty == 5


def test_the_read_service_refuses_someone_elses_notification(cast: Cast) -> None:
    [notification] = notify(
        recipients=[cast.user("provider")],
        event="referral.accepted",
        reference="R-2026-00042",
        link=referral_link(),
    )

    with pytest.raises(NotFound):
        notification_mark_read(actor=cast.user("colleague"), notification=notification)

    notification.refresh_from_db()
    assert notification.read_at is None
    assert not AuditEvent.objects.filter(action="notification.read").exists()


def test_an_unknown_e_mail_mode_is_refused_and_nothing_is_stored(cast: Cast) -> None:
    with pytest.raises(ServiceError) as error:
        notification_preference_update(actor=cast.user("provider"), email_mode="weekly")

    assert error.value.code == "invalid"
    assert NotificationPreference.objects.count() == 0


def test_a_preference_change_is_audited_without_phi(cast: Cast) -> None:
    provider = cast.user("provider")

    preference = notification_preference_update(actor=provider, email_mode="daily_digest")

    event = AuditEvent.objects.get(action="notification.preference_updated")
    assert (event.actor_id, event.object_type, event.object_id, event.details) == (
        provider.pk,
        "notification_preference",
        str(preference.public_id),
        {"email_mode": "daily_digest"},
    )
