"""The portal pages: the list, marking read, opening, the preference form and the header badge."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.notifications.models import Notification, NotificationPreference
from portal.notifications.services import notify
from tests.personas import SIGNED_IN_PERSONAS, Cast
from tests.portal.notifications.conftest import referral_link

pytestmark = pytest.mark.django_db


def page_client(cast: Cast, persona: str) -> Client:
    client = Client()
    user = cast[persona].user
    if user is not None:
        client.force_login(user)
    return client


def notify_persona(cast: Cast, persona: str, reference: str = "R-2026-00042") -> Notification:
    [notification] = notify(
        recipients=[cast.user(persona)],
        event="referral.info_requested",
        reference=reference,
        link=referral_link(),
    )
    return notification


def test_the_page_lists_only_ones_own_notifications(cast: Cast) -> None:
    own = {
        name: notify_persona(cast, name, f"R-2026-{index:05d}")
        for index, name in enumerate(SIGNED_IN_PERSONAS)
    }
    for persona in SIGNED_IN_PERSONAS:
        response = page_client(cast, persona).get("/notifications/")

        assert response.status_code == 200
        page = response.content.decode()
        assert own[persona].reference in page
        assert "Referral info requested" in page
        assert str(own[persona].public_id) in page
        for name, notification in own.items():
            if name != persona:
                assert notification.reference not in page
                assert str(notification.public_id) not in page


def test_the_header_badge_shows_the_unread_count_with_one_count_query(cast: Cast) -> None:
    for index in range(3):
        notify_persona(cast, "provider", f"R-2026-{index:05d}")
    notify_persona(cast, "colleague")
    client = page_client(cast, "provider")

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")

    assert response.status_code == 200
    assert '<span class="badge" aria-label="3 unread">3</span>' in response.content.decode()
    counts = [q["sql"] for q in queries if "notifications_notification" in q["sql"]]
    assert len(counts) == 1
    assert counts[0].startswith("SELECT COUNT(*)")


def test_no_badge_without_unread_notifications(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")
    Notification.objects.filter(pk=notification.pk).update(read_at=notification.created_at)

    response = page_client(cast, "provider").get("/")

    page = response.content.decode()
    assert 'href="/notifications/"' in page
    assert 'class="badge"' not in page


def test_mark_read_and_mark_all_read(cast: Cast) -> None:
    first, second = notify_persona(cast, "provider"), notify_persona(cast, "provider")
    other = notify_persona(cast, "colleague")
    client = page_client(cast, "provider")

    response = client.post(f"/notifications/{first.public_id}/read/")
    assert (response.status_code, response["Location"]) == (302, "/notifications/")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None
    assert second.read_at is None

    response = client.post("/notifications/read-all/")
    assert (response.status_code, response["Location"]) == (302, "/notifications/")
    assert Notification.objects.filter(read_at__isnull=True).get() == other


def test_open_marks_read_and_goes_to_the_link(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")

    response = page_client(cast, "provider").post(f"/notifications/{notification.public_id}/open/")

    assert (response.status_code, response["Location"]) == (302, notification.link)
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_anothers_notification_or_an_unknown_one_is_404_and_unchanged(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")
    for persona in SIGNED_IN_PERSONAS:
        if persona == "provider":
            continue
        client = page_client(cast, persona)
        for action in ("read", "open"):
            assert (
                client.post(f"/notifications/{notification.public_id}/{action}/").status_code == 404
            )
            assert client.post(f"/notifications/{uuid.uuid4()}/{action}/").status_code == 404
        assert client.get(f"/notifications/?before={notification.public_id}").status_code == 404
    notification.refresh_from_db()
    assert notification.read_at is None


def test_state_changes_are_refused_on_get(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")
    client = page_client(cast, "provider")

    statuses = {
        client.get(f"/notifications/{notification.public_id}/read/").status_code,
        client.get(f"/notifications/{notification.public_id}/open/").status_code,
        client.get("/notifications/read-all/").status_code,
    }

    assert statuses == {405}
    notification.refresh_from_db()
    assert notification.read_at is None


def test_anonymous_visitors_are_sent_to_sign_in_and_change_nothing(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")
    client = Client()

    responses = [
        client.get("/notifications/"),
        client.get("/notifications/preferences/"),
        client.post("/notifications/preferences/", {"email_mode": "daily_digest"}),
        client.post(f"/notifications/{notification.public_id}/read/"),
        client.post(f"/notifications/{notification.public_id}/open/"),
        client.post("/notifications/read-all/"),
    ]

    for response in responses:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    notification.refresh_from_db()
    assert notification.read_at is None
    assert NotificationPreference.objects.count() == 0


def test_csrf_is_enforced_on_the_pages(cast: Cast) -> None:
    notification = notify_persona(cast, "provider")
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.user("provider"))

    assert client.post(f"/notifications/{notification.public_id}/read/").status_code == 403
    assert (
        client.post("/notifications/preferences/", {"email_mode": "daily_digest"}).status_code
        == 403
    )
    notification.refresh_from_db()
    assert notification.read_at is None
    assert NotificationPreference.objects.count() == 0


def test_the_preference_form_saves_the_choice(cast: Cast) -> None:
    client = page_client(cast, "provider")

    page = client.get("/notifications/preferences/")
    saved = client.post("/notifications/preferences/", {"email_mode": "daily_digest"})
    again = client.get("/notifications/preferences/")

    assert page.status_code == 200
    assert 'value="immediate" required id="id_email_mode_0" checked' in page.content.decode()
    assert (saved.status_code, saved["Location"]) == (302, "/notifications/preferences/")
    assert list(NotificationPreference.objects.values_list("user_id", "email_mode")) == [
        (cast.user("provider").pk, "daily_digest")
    ]
    assert "Your notification preference is saved." in again.content.decode()


def test_a_bad_preference_choice_is_refused_with_a_message(cast: Cast) -> None:
    response = page_client(cast, "provider").post(
        "/notifications/preferences/", {"email_mode": "weekly"}
    )

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert NotificationPreference.objects.count() == 0


def test_older_notifications_are_reached_by_a_cursor(cast: Cast) -> None:
    provider = cast.user("provider")
    created = [
        notify(
            recipients=[provider],
            event="referral.accepted",
            reference=f"R-2026-{number:05d}",
            link=referral_link(),
        )[0]
        for number in range(55)
    ]
    client = page_client(cast, "provider")

    first = client.get("/notifications/").content.decode()
    newest_first = list(reversed(created))
    assert f"?before={newest_first[49].public_id}" in first
    assert newest_first[49].reference in first
    assert newest_first[50].reference not in first

    second = client.get(f"/notifications/?before={newest_first[49].public_id}").content.decode()
    assert [n.reference in second for n in newest_first[50:]] == [True] * 5
    assert newest_first[49].reference not in second
    assert "?before=" not in second
