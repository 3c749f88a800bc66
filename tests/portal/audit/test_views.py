"""The portal's audit trail page (/audit/) and its CSV export: clinic admins only."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.audit.views import PAGE_SIZE
from tests.personas import ALL_PERSONAS, Cast

pytestmark = pytest.mark.django_db

PAGE = "/audit/"
EXPORT = "/audit/export.csv"
NOT_ADMINS = [name for name in ALL_PERSONAS if name not in {"admin", "anonymous"}]


def client_for(cast: Cast, persona: str) -> Client:
    client = Client()
    user = cast[persona].user
    if user is not None:
        client.force_login(user)
    return client


def _event(object_id: str, **details: str) -> AuditEvent:
    return audit_record(
        actor=None,
        action="referral.updated",
        object_type="referral",
        object_id=object_id,
        details=details or None,
    )


@pytest.mark.parametrize("persona", NOT_ADMINS)
@pytest.mark.parametrize("path", [PAGE, EXPORT])
def test_others_are_refused_and_only_the_refusal_is_recorded(
    cast: Cast, persona: str, path: str
) -> None:
    secret = _event("ref-visible-only-to-admins")
    client = client_for(cast, persona)  # signing in is audited too: before the snapshot
    before = set(AuditEvent.objects.values_list("sequence", flat=True))

    response = client.get(path)

    assert response.status_code == 403
    assert b"ref-visible-only-to-admins" not in response.content
    new = AuditEvent.objects.exclude(sequence__in=before)
    assert list(new.values_list("actor", "action", "outcome")) == [
        (cast.user(persona).pk, "audit.list", "denied")
    ]
    assert AuditEvent.objects.filter(pk=secret.pk).exists()


@pytest.mark.parametrize("path", [PAGE, EXPORT])
def test_anonymous_visitors_are_sent_to_sign_in(cast: Cast, path: str) -> None:
    before = AuditEvent.objects.count()

    response = client_for(cast, "anonymous").get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert AuditEvent.objects.count() == before


def test_the_admin_sees_an_accessible_table_with_filters_and_an_export_button(
    cast: Cast,
) -> None:
    event = audit_record(
        actor=cast.user("coordinator"),
        action="patient.read",
        object_type="patient",
        object_id="6f0c2f4e-6a40-4a50-9bb4-1b7f1f3c0001",
    )

    response = client_for(cast, "admin").get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<caption>Audit events, newest first</caption>" in html
    assert '<th scope="col">User</th>' in html
    assert '<label for="id_patient">Patient (public id)</label>' in html
    assert f"<td>{event.sequence}</td>" in html
    assert "coordinator@cast.example" in html
    assert f'href="?actor={cast.user("coordinator").public_id}"' in html
    assert 'href="/audit/export.csv"' in html


def test_filters_narrow_the_table(cast: Cast) -> None:
    referral = uuid.uuid4()
    about = _event(str(referral))
    naming = _event("msg-1", referral=str(referral))
    other = _event("ref-other")

    response = client_for(cast, "admin").get(PAGE, {"referral": str(referral)})

    html = response.content.decode()
    assert f"<td>{about.sequence}</td>" in html
    assert f"<td>{naming.sequence}</td>" in html
    assert f"<td>{other.sequence}</td>" not in html
    assert f'href="/audit/export.csv?referral={referral}"' in html


def test_bad_filters_are_a_400_with_the_errors_shown(cast: Cast) -> None:
    _event("ref-1")

    response = client_for(cast, "admin").get(PAGE, {"patient": "not-a-uuid"})

    assert response.status_code == 400
    assert "Enter a valid UUID." in response.content.decode()
    assert "<table" not in response.content.decode()


def test_older_events_are_on_the_next_page(cast: Cast) -> None:
    client = client_for(cast, "admin")  # its sign-in event is older than these
    events = [_event(f"ref-{index}") for index in range(PAGE_SIZE + 1)]

    first = client.get(PAGE).content.decode()
    older_link = f'href="/audit/?before={events[1].sequence}"'
    assert older_link in first
    assert f"<td>{events[0].sequence}</td>" not in first
    second = client.get(PAGE, {"before": events[1].sequence}).content.decode()

    assert f"<td>{events[0].sequence}</td>" in second
    assert f"<td>{events[1].sequence}</td>" not in second
    assert "Older events" not in second
    assert 'href="/audit/">Newest events' in second


def test_the_portal_export_is_audited(cast: Cast) -> None:
    kept = _event("ref-kept")
    _event("ref-other")

    response = client_for(cast, "admin").get(EXPORT, {"object_id": "ref-kept"})

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content)
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert [row[0] for row in rows[1:]] == [str(kept.sequence)]
    export = AuditEvent.objects.get(action="audit.exported")
    assert (export.actor, export.details) == (
        cast.user("admin"),
        {"filter_object_id": "ref-kept", "rows": 1},
    )
