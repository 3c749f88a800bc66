"""``/api/v1/notifications/``: over the persona cast, each sees and changes only their own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portal.audit.models import AuditEvent
from portal.notifications.models import Notification, NotificationPreference
from portal.notifications.services import notify
from tests.factories import MembershipFactory
from tests.personas import SIGNED_IN_PERSONAS, Cast
from tests.portal.notifications.conftest import referral_link

pytestmark = pytest.mark.django_db

LIST = "/api/v1/notifications/"
PREFERENCES = "/api/v1/notifications/preferences/"
READ_ALL = "/api/v1/notifications/read-all/"


def read_url(notification_id: Any) -> str:
    return f"/api/v1/notifications/{notification_id}/read/"


def client_for(cast: Cast, persona: str) -> APIClient:
    client = APIClient()
    user = cast[persona].user
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def inbox(cast: Cast) -> dict[str, list[Notification]]:
    """Two notifications for every signed-in persona, the newer first."""
    owned: dict[str, list[Notification]] = {}
    for name in SIGNED_IN_PERSONAS:
        older = notify(
            recipients=[cast.user(name)],
            event="referral.submitted",
            reference="R-2026-00041",
            link=referral_link(),
        )
        newer = notify(
            recipients=[cast.user(name)],
            event="referral.accepted",
            reference="R-2026-00042",
            link=referral_link(),
        )
        owned[name] = newer + older
    return owned


TITLES = {"referral.accepted": "Referral accepted", "referral.submitted": "Referral submitted"}


def others_notifications(inbox: dict[str, list[Notification]], persona: str) -> list[Notification]:
    return [
        notification for name, rows in inbox.items() if name != persona for notification in rows
    ]


def read_states() -> list[tuple[Any, Any]]:
    return list(Notification.objects.order_by("pk").values_list("pk", "read_at"))


def test_the_list_holds_exactly_the_callers_own_notifications(
    cast: Cast, inbox: dict[str, list[Notification]]
) -> None:
    for persona in SIGNED_IN_PERSONAS:
        response = client_for(cast, persona).get(LIST)

        assert response.status_code == 200
        body = response.json()
        assert body["results"] == [
            {
                "id": str(notification.public_id),
                "event": notification.event,
                "title": TITLES[notification.event],
                "reference": notification.reference,
                "link": notification.link,
                "urgent": False,
                "read_at": None,
                "created_at": body["results"][index]["created_at"],
            }
            for index, notification in enumerate(inbox[persona])
        ]
        assert (body["next"], body["previous"]) == (None, None)
        for notification in others_notifications(inbox, persona):
            assert str(notification.public_id) not in response.content.decode()


def test_another_users_notification_answers_404_changes_nothing_and_is_audited(
    cast: Cast, inbox: dict[str, list[Notification]]
) -> None:
    before = read_states()
    for persona in SIGNED_IN_PERSONAS:
        client = client_for(cast, persona)
        others = others_notifications(inbox, persona)

        responses = [client.post(read_url(notification.public_id)) for notification in others]

        assert {response.status_code for response in responses} == {404}
        assert {tuple(response.json().items()) for response in responses} == {
            (("detail", "Not found."), ("code", "not_found"))
        }
        assert read_states() == before
        denied = AuditEvent.objects.filter(
            action="notification.access", outcome="denied", actor=cast.user(persona)
        )
        assert sorted(event.object_id for event in denied) == sorted(
            str(notification.public_id) for notification in others
        )


def test_marking_ones_own_notification_read_is_idempotent(
    cast: Cast, inbox: dict[str, list[Notification]]
) -> None:
    for persona in SIGNED_IN_PERSONAS:
        client = client_for(cast, persona)
        target, untouched = inbox[persona]
        read_before = set(Notification.objects.filter(read_at__isnull=False).values_list("pk"))

        first = client.post(read_url(target.public_id))
        second = client.post(read_url(target.public_id))

        assert (first.status_code, second.status_code) == (200, 200)
        assert first.json()["id"] == str(target.public_id)
        assert first.json()["read_at"] is not None
        assert second.json()["read_at"] == first.json()["read_at"]
        untouched.refresh_from_db()
        assert untouched.read_at is None
        read_after = set(Notification.objects.filter(read_at__isnull=False).values_list("pk"))
        assert read_after - read_before == {(target.pk,)}
        assert (
            AuditEvent.objects.filter(
                action="notification.read",
                object_id=str(target.public_id),
                actor=cast.user(persona),
            ).count()
            == 1
        )


def test_an_unknown_id_answers_404(cast: Cast, inbox: dict[str, list[Notification]]) -> None:
    response = client_for(cast, "provider").post(read_url(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert not AuditEvent.objects.filter(action="notification.access").exists()


def test_read_all_marks_only_the_callers_own(
    cast: Cast, inbox: dict[str, list[Notification]]
) -> None:
    done: set[int] = set()
    for persona in SIGNED_IN_PERSONAS:
        client = client_for(cast, persona)

        first = client.post(READ_ALL)
        second = client.post(READ_ALL)

        assert (first.status_code, first.json()) == (200, {"marked": 2})
        assert (second.status_code, second.json()) == (200, {"marked": 0})
        done.add(cast.user(persona).pk)
        read = Notification.objects.filter(read_at__isnull=False)
        assert set(read.values_list("recipient_id", flat=True)) == done


def test_anonymous_callers_get_401_and_change_nothing(
    cast: Cast, inbox: dict[str, list[Notification]]
) -> None:
    client = client_for(cast, "anonymous")
    before = read_states()
    target = inbox["provider"][0]

    responses = [
        client.get(LIST),
        client.post(read_url(target.public_id)),
        client.post(READ_ALL),
        client.get(PREFERENCES),
        client.put(PREFERENCES, {"email_mode": "daily_digest"}, format="json"),
    ]

    assert {response.status_code for response in responses} == {401}
    assert {response.json()["code"] for response in responses} == {"not_authenticated"}
    for response in responses:
        assert "R-2026" not in response.content.decode()
    assert read_states() == before
    assert NotificationPreference.objects.count() == 0


def test_a_user_without_mfa_gets_403_mfa_required(cast: Cast) -> None:
    user = MembershipFactory.create(organization=cast.practice).user
    notify(recipients=[user], event="referral.accepted", reference="R-2026-00042", link="/")
    client = APIClient()
    client.force_authenticate(user)

    responses = [
        client.get(LIST),
        client.post(READ_ALL),
        client.put(PREFERENCES, {"email_mode": "daily_digest"}, format="json"),
    ]

    assert {response.status_code for response in responses} == {403}
    assert {response.json()["code"] for response in responses} == {"mfa_required"}
    assert Notification.objects.get().read_at is None
    assert NotificationPreference.objects.count() == 0


def test_each_persona_reads_and_sets_only_their_own_preference(cast: Cast) -> None:
    chosen: list[tuple[int, str]] = []
    for persona in SIGNED_IN_PERSONAS:
        client = client_for(cast, persona)

        default = client.get(PREFERENCES)
        updated = client.put(PREFERENCES, {"email_mode": "daily_digest"}, format="json")
        after = client.get(PREFERENCES)

        assert (default.status_code, default.json()) == (200, {"email_mode": "immediate"})
        assert (updated.status_code, updated.json()) == (200, {"email_mode": "daily_digest"})
        assert after.json() == {"email_mode": "daily_digest"}
        chosen.append((cast.user(persona).pk, "daily_digest"))
        assert sorted(NotificationPreference.objects.values_list("user_id", "email_mode")) == (
            sorted(chosen)
        )


@pytest.mark.parametrize(
    ("payload", "error_field"),
    [
        ({"email_mode": "weekly"}, "email_mode"),
        ({"email_mode": ""}, "email_mode"),
        ({"email_mode": None}, "email_mode"),
        ({"email_mode": ["immediate"]}, "email_mode"),
        ({}, "email_mode"),
        ({"email_mode": "daily_digest", "user": 1}, "user"),
    ],
)
def test_bad_preference_input_gets_400_and_changes_nothing(
    cast: Cast, payload: dict[str, Any], error_field: str
) -> None:
    response = client_for(cast, "provider").put(PREFERENCES, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert error_field in response.json()["detail"]
    assert NotificationPreference.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ('["immediate"]', "application/json"),
        ("email_mode=daily_digest", "text/plain"),
    ],
)
def test_malformed_preference_bodies_get_4xx_and_change_nothing(
    cast: Cast, body: str, content_type: str
) -> None:
    response = client_for(cast, "provider").put(PREFERENCES, body, content_type=content_type)

    assert response.status_code in {400, 415}
    assert NotificationPreference.objects.count() == 0


def test_other_methods_are_refused(cast: Cast, inbox: dict[str, list[Notification]]) -> None:
    client = client_for(cast, "provider")
    target = inbox["provider"][0]

    responses = [
        client.post(LIST, {}, format="json"),
        client.delete(LIST),
        client.get(read_url(target.public_id)),
        client.patch(PREFERENCES, {"email_mode": "daily_digest"}, format="json"),
        client.post(PREFERENCES, {"email_mode": "daily_digest"}, format="json"),
        client.get(READ_ALL),
    ]

    assert {response.status_code for response in responses} == {405}
    target.refresh_from_db()
    assert target.read_at is None
    assert NotificationPreference.objects.count() == 0


def test_the_list_is_cursor_paginated_with_a_query_count_that_does_not_grow(
    cast: Cast,
) -> None:
    provider = cast.user("provider")
    for number in range(60):
        notify(
            recipients=[provider],
            event="referral.accepted",
            reference=f"R-2026-{number:05d}",
            link=referral_link(),
        )
    client = client_for(cast, "provider")

    def fetch(url: str) -> tuple[dict[str, Any], int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return response.json(), len(queries)

    small, small_queries = fetch(f"{LIST}?page_size=10")
    large, large_queries = fetch(f"{LIST}?page_size=50")

    assert len(small["results"]) == 10
    assert len(large["results"]) == 50
    # The MFA check, then one page query: no COUNT, nothing per row.
    assert small_queries == large_queries == 2
    assert "count" not in small

    seen: list[str] = []
    url: str | None = f"{LIST}?page_size=25"
    while url:
        page, _queries = fetch(url)
        seen.extend(row["reference"] for row in page["results"])
        url = page["next"]
    assert seen == [f"R-2026-{number:05d}" for number in reversed(range(60))]


def test_page_size_is_capped_at_100(cast: Cast) -> None:
    provider = cast.user("provider")
    Notification.objects.bulk_create(
        Notification(
            recipient=provider,
            event="referral.accepted",
            reference="R-2026-00042",
            link="/",
            email_mode="immediate",
        )
        for _number in range(120)
    )

    response = client_for(cast, "provider").get(f"{LIST}?page_size=500")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 100
