"""Portal pages: the inbox, the live thread page (htmx polling with ``since``), the composer, read
marking, retraction, the header badge, the referral include and the retention setting."""

from __future__ import annotations

import re
import uuid

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory

from messaging import services
from messaging.models import Message, MessageAttachment, RetentionPolicy, Thread, ThreadReadState
from referrals.models import Referral, ReferralStatus
from tests.messaging.conftest import CANARY, Send, pdf_upload
from tests.personas import ALL_PERSONAS, Cast
from tests.referrals.factories import referral_in_state

pytestmark = pytest.mark.django_db

PARTICIPANTS = ("provider", "colleague", "staff", "coordinator", "clinician", "admin")
HTMX = {"HX-Request": "true"}


def browser(cast: Cast, persona: str) -> Client:
    client = Client()
    user = cast[persona].user
    if user is not None:
        client.force_login(user)
    return client


def _assert_no_inline_script(html: str) -> None:
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    assert "hx-on" not in html


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_page_access_over_the_cast(
    cast: Cast, referral_thread: Thread, send: Send, persona: str
) -> None:
    message = send("provider", referral_thread, CANARY, attachments=[pdf_upload()])
    attachment = MessageAttachment.objects.get(message=message)
    client = browser(cast, persona)
    thread_path = f"/messages/{referral_thread.public_id}/"
    before = (Message.objects.count(), ThreadReadState.objects.count())

    pages = {
        "inbox": client.get("/messages/"),
        "thread": client.get(thread_path),
        "updates": client.get(f"{thread_path}updates/"),
        "download": client.get(f"/messages/attachments/{attachment.public_id}/download/"),
        "send": client.post(f"{thread_path}send/", {"body": "Hi."}),
        "read": client.post(f"{thread_path}read/"),
    }

    statuses = {name: response.status_code for name, response in pages.items()}
    if persona == "anonymous":
        assert set(statuses.values()) == {302}
        assert all("/accounts/login/" in r["Location"] for r in pages.values())
    elif persona == "outsider":
        assert statuses == {
            "inbox": 200,
            "thread": 404,
            "updates": 404,
            "download": 404,
            "send": 404,
            "read": 404,
        }
    else:
        assert statuses == {
            "inbox": 200,
            "thread": 200,
            "updates": 200,
            "download": 200,
            "send": 302,
            "read": 302,
        }
    if persona in {"anonymous", "outsider"}:
        assert (Message.objects.count(), ThreadReadState.objects.count()) == before
        for name, response in pages.items():
            if name != "download":
                assert CANARY.encode() not in response.content
                assert str(referral_thread.public_id).encode() not in response.content


def test_state_changes_refuse_get(cast: Cast, referral_thread: Thread) -> None:
    client = browser(cast, "provider")

    for action in ("send", "read"):
        assert client.get(f"/messages/{referral_thread.public_id}/{action}/").status_code == 405
    assert ThreadReadState.objects.count() == 0


@pytest.mark.parametrize("persona", ["coordinator", "clinician", "admin"])
def test_the_clinic_cannot_open_a_draft_thread(cast: Cast, persona: str) -> None:
    thread = services.referral_thread_ensure(referral=referral_in_state(cast, ReferralStatus.DRAFT))

    response = browser(cast, persona).get(f"/messages/{thread.public_id}/")

    assert response.status_code == 404


# --- inbox and badge -------------------------------------------------------------------------


def test_the_inbox_lists_threads_with_exact_unread_counts(
    cast: Cast, referral_thread: Thread, general_thread: Thread, send: Send
) -> None:
    send("provider", referral_thread, "One.")
    send("provider", referral_thread, "Two.")

    html = browser(cast, "coordinator").get("/messages/").content.decode()

    rows = re.findall(r'<tr class="(unread|read)" data-thread="([0-9a-f-]+)">', html)
    assert rows == [
        ("unread", str(referral_thread.public_id)),
        ("unread", str(general_thread.public_id)),
    ]
    assert 'aria-label="2 unread">2</span>' in html
    assert 'aria-label="1 unread">1</span>' in html
    # The header badge counts all three.
    assert re.search(
        r'id="messages-nav"[^>]*>Messages <span class="badge" aria-label="3 unread">3', html
    )
    _assert_no_inline_script(html)


def test_the_badge_partial_and_an_empty_inbox(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    send("coordinator", referral_thread, "Hello practice.")

    badge = browser(cast, "provider").get("/messages/badge/")
    empty = browser(cast, "outsider").get("/messages/")

    assert badge.status_code == 200
    assert 'aria-label="1 unread">1</span>' in badge.content.decode()
    assert "No conversations yet" in empty.content.decode()
    assert 'id="messages-nav"' in empty.content.decode()
    nav = re.search(r'<a id="messages-nav".*?</a>', empty.content.decode())
    assert nav is not None
    assert 'class="badge"' not in nav.group(0)


# --- the thread page -------------------------------------------------------------------------


def test_the_thread_page_polls_with_since(cast: Cast, referral_thread: Thread, send: Send) -> None:
    last = send("coordinator", referral_thread, "Latest.")

    response = browser(cast, "provider").get(f"/messages/{referral_thread.public_id}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Latest." in html
    assert f'id="message-since" name="since" value="{last.public_id}"' in html
    assert f'hx-get="/messages/{referral_thread.public_id}/updates/"' in html
    assert 'hx-trigger="every 5s, messages-changed from:body"' in html
    assert 'hx-include="#message-since"' in html
    assert f'id="read-through" name="through" value="{last.public_id}"' in html
    assert 'enctype="multipart/form-data"' in html
    assert 'name="attachments"' in html
    assert "multiple" in html
    directives = {part.strip() for part in response["Content-Security-Policy"].split(";")}
    assert "script-src 'self'" in directives
    _assert_no_inline_script(html)
    # Opening the page marks nothing read by itself: the read marker posts.
    assert not ThreadReadState.objects.filter(user=cast.user("provider")).exists()


def test_updates_answer_new_messages_after_since_or_204(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = send("coordinator", referral_thread, "First.")
    client = browser(cast, "provider")
    path = f"/messages/{referral_thread.public_id}/updates/"

    nothing = client.get(path, {"since": str(first.public_id)}, headers=HTMX)
    second = send("coordinator", referral_thread, "Second reply.")
    update = client.get(path, {"since": str(first.public_id)}, headers=HTMX)
    bad = client.get(path, {"since": "not-a-time"}, headers=HTMX)

    assert nothing.status_code == 204
    html = update.content.decode()
    assert update.status_code == 200
    assert html.count('<li id="message-') == 1
    assert "Second reply." in html
    assert "First." not in html
    assert f'id="message-since" name="since" value="{second.public_id}" hx-swap-oob="true"' in html
    assert f'id="read-through" name="through" value="{second.public_id}" hx-swap-oob="true"' in html
    assert update["HX-Trigger-After-Swap"] == "messages-arrived"
    assert bad.status_code == 400


def test_sending_with_htmx_returns_a_fresh_composer(cast: Cast, referral_thread: Thread) -> None:
    client = browser(cast, "provider")
    path = f"/messages/{referral_thread.public_id}/send/"

    ok = client.post(
        path, {"body": "Question for the clinic.", "attachments": [pdf_upload()]}, headers=HTMX
    )
    empty = client.post(path, {"body": "  "}, headers=HTMX)
    too_long = client.post(path, {"body": "x" * 20_001}, headers=HTMX)

    assert ok.status_code == 200
    assert ok["HX-Trigger"] == "messages-changed"
    assert '<form id="composer"' in ok.content.decode()
    assert "Question for the clinic." not in ok.content.decode()
    message = Message.objects.get()
    assert (message.body, message.attachments.count()) == ("Question for the clinic.", 1)
    assert empty.status_code == 200
    assert "HX-Trigger" not in empty
    assert "Write a message." in empty.content.decode()
    assert "at most 20000 characters" in too_long.content.decode()
    assert Message.objects.count() == 1


def test_sending_without_javascript_redirects_or_shows_errors(
    cast: Cast, referral_thread: Thread
) -> None:
    client = browser(cast, "staff")
    path = f"/messages/{referral_thread.public_id}/send/"

    ok = client.post(path, {"body": "From the form."})
    refused = client.post(path, {"body": ""})

    assert (ok.status_code, ok["Location"]) == (
        302,
        f"/messages/{referral_thread.public_id}/#composer",
    )
    assert refused.status_code == 400
    assert "Write a message." in refused.content.decode()
    assert Message.objects.count() == 1


def test_the_read_marker_marks_read_and_refreshes_the_badge(
    cast: Cast, referral_thread: Thread, send: Send
) -> None:
    first = send("coordinator", referral_thread, "One.")
    send("coordinator", referral_thread, "Two.")
    client = browser(cast, "provider")
    path = f"/messages/{referral_thread.public_id}/read/"

    partial = client.post(path, {"through": str(first.public_id)}, headers=HTMX)
    unknown = client.post(path, {"through": str(uuid.uuid4())}, headers=HTMX)
    full = client.post(path, headers=HTMX)

    assert (partial.status_code, partial["HX-Trigger"]) == (204, "messages-read")
    assert unknown.status_code == 400
    assert full.status_code == 204
    assert ThreadReadState.objects.get(user=cast.user("provider")).last_read_sequence == 2


def test_retracting_from_the_page(cast: Cast, referral_thread: Thread, send: Send) -> None:
    mine = send("provider", referral_thread, "Wrong patient, sorry.")
    theirs = send("coordinator", referral_thread, "Noted.")
    client = browser(cast, "provider")

    page = client.get(f"/messages/{referral_thread.public_id}/").content.decode()
    assert page.count(">Retract</button>") == 1
    refused = client.post(f"/messages/m/{theirs.public_id}/retract/", headers=HTMX)
    done = client.post(f"/messages/m/{mine.public_id}/retract/", headers=HTMX)

    assert "Only the author can retract a message." in refused.content.decode()
    assert done.status_code == 200
    assert "Message retracted by its author." in done.content.decode()
    assert "Wrong patient" not in done.content.decode()
    assert Message.objects.get(pk=mine.pk).body is None
    outsider = browser(cast, "outsider").post(
        f"/messages/m/{mine.public_id}/retract/", headers=HTMX
    )
    assert outsider.status_code == 404


# --- the referral include --------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["provider", "coordinator", "outsider"])
def test_the_referral_page_include(
    cast: Cast, referral: Referral, referral_thread: Thread, send: Send, persona: str
) -> None:
    send("provider", referral_thread, CANARY)
    request = RequestFactory().get(f"/referrals/{referral.public_id}/")
    request.user = cast.user(persona)
    template = Template("{% load messaging_tags %}{% referral_thread referral %}")

    html = template.render(Context({"request": request, "referral": referral}))

    if persona == "outsider":
        assert html.strip() == ""
    else:
        assert 'id="referral-thread-heading"' in html
        assert CANARY in html
        assert f'hx-get="/messages/{referral_thread.public_id}/updates/"' in html
        _assert_no_inline_script(html)


# --- new conversations and retention ---------------------------------------------------------


def test_starting_a_conversation_from_the_portal(cast: Cast) -> None:
    provider_form = browser(cast, "provider").get("/messages/new/").content.decode()
    coordinator = browser(cast, "coordinator")
    coordinator_form = coordinator.get("/messages/new/").content.decode()

    assert 'name="practice"' not in provider_form
    assert 'name="practice"' in coordinator_form
    missing = coordinator.post("/messages/new/", {"subject": "Hi", "body": "Hello."})
    created = coordinator.post(
        "/messages/new/",
        {"subject": "Hi", "body": "Hello.", "practice": str(cast.other_practice.public_id)},
    )

    assert missing.status_code == 400
    thread = Thread.objects.get()
    assert (created.status_code, created["Location"]) == (302, f"/messages/{thread.public_id}/")
    assert thread.practice == cast.other_practice


@pytest.mark.parametrize("persona", ALL_PERSONAS)
def test_only_clinic_admins_reach_the_retention_setting(cast: Cast, persona: str) -> None:
    response = browser(cast, persona).get("/messages/retention/")

    expected = {"admin": 200, "anonymous": 302}.get(persona, 404)
    assert response.status_code == expected


def test_the_admin_saves_the_retention(cast: Cast) -> None:
    client = browser(cast, "admin")

    saved = client.post(
        "/messages/retention/", {"message_retention_days": "2555", "archive_grace_days": "30"}
    )
    bad = client.post(
        "/messages/retention/", {"message_retention_days": "0", "archive_grace_days": "x"}
    )

    assert saved.status_code == 302
    assert bad.status_code == 400
    policy = RetentionPolicy.objects.get(clinic=cast.clinic)
    assert (policy.message_retention_days, policy.archive_grace_days) == (2555, 30)


@pytest.mark.parametrize("persona", ["provider", "coordinator"])
def test_the_referral_page_shows_its_live_conversation(
    cast: Cast, referral: Referral, referral_thread: Thread, send: Send, persona: str
) -> None:
    send("provider", referral_thread, "Hello from the referral page.")

    response = browser(cast, persona).get(f"/referrals/{referral.public_id}/")

    html = response.content.decode()
    assert response.status_code == 200
    conversation = html[html.index('id="referral-thread-heading"') :]
    assert "Hello from the referral page." in conversation
    assert f'hx-get="/messages/{referral_thread.public_id}/updates/"' in conversation
    assert 'name="csrfmiddlewaretoken"' in conversation
    assert "messaging/messaging.css" in html
