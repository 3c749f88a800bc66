"""Memberships and MFA enrolment are read once per request, and only within a request."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portal.accounts.models import Membership
from portal.accounts.permissions import has_mfa
from portal.core.request_cache import request_scope
from referrals.permissions import access_for
from tests.personas import Cast

pytestmark = pytest.mark.django_db


def test_outside_a_request_every_call_reads_afresh(cast: Cast) -> None:
    provider = cast.user("provider")

    with CaptureQueriesContext(connection) as queries:
        first, second = access_for(provider), access_for(provider)
        assert has_mfa(provider)
        assert has_mfa(provider)

    assert first == second
    assert first.practice_ids == frozenset({cast.practice.pk})
    assert len(queries) == 4


def test_within_a_request_each_fact_is_read_once(cast: Cast) -> None:
    provider, coordinator = cast.user("provider"), cast.user("coordinator")

    with request_scope(), CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert access_for(provider).practice_ids == frozenset({cast.practice.pk})
            assert access_for(coordinator).clinic_ids == frozenset({cast.clinic.pk})
            assert has_mfa(provider)

    # One query per user: its memberships and its MFA enrolment together.
    assert len(queries) == 2


def test_a_membership_change_during_the_request_is_seen_at_once(cast: Cast) -> None:
    provider = cast.user("provider")
    membership = Membership.objects.get(user=provider, organization=cast.practice)

    with request_scope():
        assert access_for(provider).practice_ids == frozenset({cast.practice.pk})
        membership.is_active = False
        membership.save(update_fields=["is_active"])
        assert access_for(provider).practice_ids == frozenset()


def test_removing_the_authenticator_during_the_request_is_seen_at_once(cast: Cast) -> None:
    provider = cast.user("provider")

    with request_scope():
        assert has_mfa(provider)
        for authenticator in Authenticator.objects.filter(user=provider):
            authenticator.delete()
        assert not has_mfa(provider)


def test_a_deactivated_membership_loses_access_on_the_next_api_request(cast: Cast) -> None:
    client = APIClient()
    client.force_authenticate(cast.user("provider"))
    assert client.get("/api/v1/referrals/").status_code == 200
    Membership.objects.filter(user=cast.user("provider")).update(is_active=False)

    response = client.get("/api/v1/referrals/")

    assert response.status_code == 200
    assert response.json()["results"] == []
