from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from portal.accounts.management.commands.seed_demo import DEMO_USERS
from portal.accounts.models import Membership, Organization, User


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_creates_the_clinic_practices_and_users_and_prints_every_login() -> None:
    output = seed()

    assert set(Organization.objects.values_list("name", "kind")) == {
        ("Central Florida Ketamine", "clinic"),
        ("Lakeside Family Medicine", "practice"),
        ("Orlando Psychiatry Associates", "practice"),
    }
    roles = set(Membership.objects.values_list("user__email", "organization__name", "role", "npi"))
    assert roles == {
        ("coordinator@cfketamine.example", "Central Florida Ketamine", "coordinator", ""),
        ("clinician@cfketamine.example", "Central Florida Ketamine", "clinician", ""),
        ("admin@cfketamine.example", "Central Florida Ketamine", "clinic_admin", ""),
        ("pcp@lakeside.example", "Lakeside Family Medicine", "provider", "1234567893"),
        ("staff@lakeside.example", "Lakeside Family Medicine", "practice_staff", ""),
        (
            "psychiatrist@orlandopsych.example",
            "Orlando Psychiatry Associates",
            "provider",
            "1987654328",
        ),
    }
    for demo in DEMO_USERS:
        assert demo.email in output
    assert "Demo-Portal-2026" in output


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_takes_a_password() -> None:
    seed()
    seed("--password", "another-long-passphrase")

    assert User.objects.count() == len(DEMO_USERS)
    assert Membership.objects.count() == len(DEMO_USERS)
    assert Organization.objects.count() == 3
    user = authenticate(email="pcp@lakeside.example", password="another-long-passphrase")
    assert user is not None
    assert user.email == "pcp@lakeside.example"


@pytest.mark.django_db
def test_seed_demo_refuses_a_weak_password() -> None:
    with pytest.raises(CommandError, match="too short"):
        seed("--password", "short")
    assert User.objects.count() == 0
