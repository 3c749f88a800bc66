"""Every list endpoint costs a fixed, pinned number of queries, whatever the page size.

The endpoints are found in the OpenAPI schema (every GET answering a ``results`` list), so a new
list endpoint is walked as soon as it exists and fails here until it has a row builder in
``ROW_BUILDERS`` and a pinned budget in ``BUDGETS``. Each endpoint gets more than 50 rows visible
to its persona, then pages of 10 and of 50 are read and their queries counted (after one warm-up
read, so per-process caches such as content types do not count).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from messaging import services as messaging_services
from portal.audit.models import AuditEvent
from portal.notifications.services import notify
from referrals import services as referral_services
from referrals.models import EventKind, ReferralStatus
from reports import services as report_services
from reports.services import SessionInput
from tests.personas import Cast
from tests.referrals.factories import ReferralFactory
from tests.referrals.helpers import api_client
from tests.reports.helpers import phq9_answers
from tests.world import World, build_world, pdf_upload

pytestmark = pytest.mark.django_db

ROWS = 51
SMALL_PAGE, LARGE_PAGE = 10, 50

#: Queries for one page of each list, the same for 10 rows and for 50 (the client is
#: force-authenticated, so the session lookup of a real request is not counted). Every request
#: pays the MFA gate, which reads the memberships in the same query (1: ``principal_facts``); the
#: rest is the endpoint's own: its scoping, the page, the audit row of a PHI read. Raise a number
#: only with a reason: a row must cost nothing.
BUDGETS: dict[str, int] = {
    "/api/v1/audit-events/": 4,
    "/api/v1/notifications/": 2,
    "/api/v1/referrals/": 2,
    "/api/v1/referrals/{referral_id}/assessments/": 4,
    "/api/v1/referrals/{referral_id}/attachments/": 4,
    "/api/v1/referrals/{referral_id}/events/": 4,
    "/api/v1/referrals/{referral_id}/infusions/": 4,
    "/api/v1/referrals/{referral_id}/reports/": 3,
    "/api/v1/threads/": 3,
    "/api/v1/threads/{thread_id}/messages/": 5,
}

#: Who reads each list (the provider unless named): the audit trail is for clinic admins, and the
#: practice sees signed reports only.
READERS: dict[str, str] = {
    "/api/v1/audit-events/": "admin",
    "/api/v1/referrals/{referral_id}/reports/": "clinician",
}


def _referrals(world: World) -> None:
    cast = world.cast
    ReferralFactory.create_batch(
        ROWS,
        practice=cast.practice,
        clinic=cast.clinic,
        provider=cast.user("provider"),
        status=ReferralStatus.SUBMITTED,
        trials=0,
    )


def _events(world: World) -> None:
    for _ in range(ROWS):
        referral_services.referral_event_record(
            referral=world.referral,
            kind=EventKind.REPORT_READY,
            actor=world.cast.user("clinician"),
            note="Interim report ready.",
        )


def _attachments(world: World) -> None:
    for number in range(ROWS):
        referral_services.attachment_upload(
            actor=world.cast.user("provider"),
            referral=world.draft,
            uploaded_file=pdf_upload(f"record-{number}.pdf"),
        )


def _assessments(world: World) -> None:
    start = timezone.now() - timedelta(days=60)
    for number in range(ROWS):
        report_services.assessment_record(
            actor=world.cast.user("clinician"),
            referral=world.referral,
            instrument="phq9",
            answers=phq9_answers(10),
            taken_at=start + timedelta(hours=number),
        )


def _infusions(world: World) -> None:
    # After the world's own session (three days ago): sessions are recorded in time order.
    start = timezone.now() - timedelta(hours=ROWS + 1)
    for number in range(ROWS):
        report_services.infusion_session_record(
            actor=world.cast.user("clinician"),
            referral=world.referral,
            data=SessionInput(
                started_at=start + timedelta(hours=number),
                weight_kg=Decimal("80.0"),
                dose_mg_per_kg=Decimal("0.50"),
                duration_minutes=40,
            ),
        )


def _reports(world: World) -> None:
    for _ in range(ROWS):
        report_services.report_request(
            actor=world.cast.user("clinician"), referral=world.referral, kind="interim"
        )


def _threads(world: World) -> None:
    for number in range(ROWS):
        messaging_services.thread_create(
            actor=world.cast.user("provider"), subject=f"Question {number}", body="Hello."
        )


def _messages(world: World) -> None:
    for number in range(ROWS):
        persona = "coordinator" if number % 2 else "colleague"
        messaging_services.message_send(
            actor=world.cast.user(persona), thread=world.thread, body=f"Message {number}."
        )


def _notifications(world: World) -> None:
    for _ in range(ROWS):
        notify(
            recipients=[world.cast.user("provider")],
            event="referral.accepted",
            reference=world.referral.number,
            link=f"/referrals/{world.referral.public_id}/",
        )


def _audit_events(world: World) -> None:
    # Everything built before it was audited: far more than a page of events.
    assert AuditEvent.objects.count() > ROWS


#: How to give each list more than a page of 50 rows, run in this order.
ROW_BUILDERS: dict[str, Callable[[World], None]] = {
    "/api/v1/notifications/": _notifications,
    "/api/v1/referrals/": _referrals,
    "/api/v1/referrals/{referral_id}/assessments/": _assessments,
    "/api/v1/referrals/{referral_id}/attachments/": _attachments,
    "/api/v1/referrals/{referral_id}/events/": _events,
    "/api/v1/referrals/{referral_id}/infusions/": _infusions,
    "/api/v1/referrals/{referral_id}/reports/": _reports,
    "/api/v1/threads/": _threads,
    "/api/v1/threads/{thread_id}/messages/": _messages,
    "/api/v1/audit-events/": _audit_events,
}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def list_endpoints() -> list[str]:
    """Every GET of the API whose 200 answer is an object with a ``results`` array."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        content = get["responses"].get("200", {}).get("content", {})
        body = content.get("application/json", {}).get("schema")
        if body is None:
            continue
        results = _resolve(schema, body).get("properties", {}).get("results", {})
        if _resolve(schema, results).get("type") == "array":
            found.append(path)
    return sorted(found)


LIST_ENDPOINTS = list_endpoints()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Argon2 is what production uses; the cast's passwords only need to exist here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_every_list_endpoint_has_rows_and_a_budget() -> None:
    # The walk must find the known lists, or every budget below would pass vacuously.
    assert set(BUDGETS) <= set(LIST_ENDPOINTS)
    missing = [path for path in LIST_ENDPOINTS if path not in BUDGETS or path not in ROW_BUILDERS]
    assert not missing, (
        f"New list endpoints {missing}: add a row builder to ROW_BUILDERS and pin the query "
        f"count in BUDGETS in {__file__} (the test below prints the count it measures)."
    )


def _count(client: Any, url: str, page_size: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"page_size": page_size})
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(queries.captured_queries), len(response.json()["results"])


def test_a_page_costs_the_pinned_number_of_queries_whatever_its_size(cast: Cast) -> None:
    world = build_world(cast)
    for builder in ROW_BUILDERS.values():
        builder(world)
    problems = []
    for path in LIST_ENDPOINTS:
        url = path.format(**world.path_ids(path))
        client = api_client(cast, READERS.get(path, "provider"))
        client.get(url, {"page_size": SMALL_PAGE})  # warm-up
        small, small_rows = _count(client, url, SMALL_PAGE)
        large, large_rows = _count(client, url, LARGE_PAGE)
        if (small_rows, large_rows) != (SMALL_PAGE, LARGE_PAGE):
            problems.append(f"{path}: pages of {small_rows} and {large_rows} rows, not full")
        elif small != large:
            problems.append(f"{path}: {small} queries for 10 rows but {large} for 50 (N+1)")
        elif large != BUDGETS.get(path):
            problems.append(f"{path}: {large} queries, pinned at {BUDGETS.get(path)}")
    assert not problems, "\n".join(problems)
