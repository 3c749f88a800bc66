"""Audit benchmark for ``make bench``: detail reads with and without ``audit_phi_read``.

Two pairs of rows, each the same endpoint code run in-process with and without the PHI read
event written first (committed on its own, as a GET does: no ATOMIC_REQUESTS):

* through the whole request stack (the test client, a signed-in session, every middleware, the
  default "signed in with MFA" permission): the reads people and apps actually make, and the
  one the issue's target is about (audited >= 0.8x the unaudited throughput);
* the bare DRF view (one scoped query, then the serializer): the marginal cost of the event
  alone, shown for information.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client, override_settings
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from portal.accounts.models import Membership, Organization, Role, User
from portal.audit.services import audit_phi_read

Row = tuple[str, float, float | None]

AUDITED_READ = "API detail read, full request stack: audited vs unaudited"
BARE_AUDITED_READ = "bare DRF view, one query: audited vs unaudited (information)"
AUDITED_READ_MINIMUM_RATIO = 0.8


class _OrganizationOutputSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()
    kind = serializers.CharField()


class _DetailApi(APIView):
    """A detail endpoint in the house style: a read scoped to the caller, then the output."""

    audited = False

    def get(self, request: Request, public_id: uuid.UUID) -> Response:
        user = request.user
        if not isinstance(user, User):
            raise RuntimeError("the benchmark signs its user in")
        organization = Organization.objects.get(
            public_id=public_id, memberships__user=user, memberships__is_active=True
        )
        if self.audited:
            audit_phi_read(actor=user, object_type="organization", object_id=organization.public_id)
        return Response(_OrganizationOutputSerializer(organization).data)


class _BareDetailApi(_DetailApi):
    # No MFA query: the bare pair isolates the audit insert as far as it can be.
    permission_classes = [IsAuthenticated]


urlpatterns = [
    path("plain/<uuid:public_id>/", _DetailApi.as_view(audited=False)),
    path("audited/<uuid:public_id>/", _DetailApi.as_view(audited=True)),
]


def _stack_reader(client: Client, prefix: str, organization: Organization) -> Callable[[], None]:
    url = f"/{prefix}/{organization.public_id}/"

    def read() -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"bench read of {url} failed: {response.status_code}")

    return read


def _bare_reader(*, audited: bool, user: User, organization: Organization) -> Callable[[], None]:
    view = _BareDetailApi.as_view(audited=audited)
    factory = APIRequestFactory()

    def read() -> None:
        request = factory.get("/")
        force_authenticate(request, user=user)
        response = view(request, public_id=organization.public_id)
        if response.status_code != 200:
            raise RuntimeError(f"bare bench read failed: {response.status_code}")

    return read


def _timed(
    readers: dict[bool, Callable[[], None]], *, rounds: int, per_round: int
) -> dict[bool, float]:
    """Mean microseconds per read of each variant, from interleaved rounds (the machine is
    shared and its load drifts; interleaving spreads the drift over both)."""
    for read in readers.values():  # warm up connections and caches
        for _ in range(30):
            read()
    totals = dict.fromkeys(readers, 0.0)
    for _ in range(rounds):
        for audited, read in readers.items():
            start = time.perf_counter()
            for _ in range(per_round):
                read()
            totals[audited] += time.perf_counter() - start
    return {audited: total / (rounds * per_round) * 1e6 for audited, total in totals.items()}


def audit_benchmarks(*, rounds: int = 8, per_round: int = 100) -> list[Row]:
    organization = Organization.objects.create(name="Bench Practice", kind="practice")
    user = User.objects.create_user(email="bench@example.org", full_name="Bench")
    Membership.objects.create(
        user=user, organization=organization, role=Role.PROVIDER, npi="1234567893"
    )
    TOTP.activate(user, generate_totp_secret())
    with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"]):
        client = Client()
        client.force_login(user)
        stack = _timed(
            {
                False: _stack_reader(client, "plain", organization),
                True: _stack_reader(client, "audited", organization),
            },
            rounds=rounds,
            per_round=per_round,
        )
    bare = _timed(
        {
            audited: _bare_reader(audited=audited, user=user, organization=organization)
            for audited in (False, True)
        },
        rounds=rounds,
        per_round=per_round,
    )
    return [
        (AUDITED_READ, stack[True], stack[False]),
        (BARE_AUDITED_READ, bare[True], bare[False]),
    ]
