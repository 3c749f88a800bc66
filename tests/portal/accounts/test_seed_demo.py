from __future__ import annotations

from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from portal.accounts.management.commands.seed_demo import DEMO_USERS, demo_totp_secret
from portal.accounts.models import Membership, Organization, User
from tests.portal.accounts.helpers import totp_code


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


@pytest.mark.django_db
def test_seed_demo_enrols_every_demo_user_in_totp_and_prints_the_keys() -> None:
    output = seed()
    seed()

    for demo in DEMO_USERS:
        user = User.objects.get(email=demo.email)
        secret = demo_totp_secret(demo.email)
        authenticators = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP)
        assert authenticators.count() == 1
        stored = authenticators.get().data["secret"]
        assert stored.startswith("v1.")
        assert secret not in stored
        assert TOTP(authenticators.get()).validate_code(totp_code(secret))
        assert f"TOTP key {secret}" in output
        assert f"otpauth://totp/{quote(demo.email)}?secret={secret}" in output
        assert EmailAddress.objects.filter(user=user, verified=True, primary=True).count() == 1


def test_the_readme_lists_the_demo_totp_keys() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()

    for demo in DEMO_USERS:
        assert f"| {demo.email} |" in readme
        assert f"`{demo_totp_secret(demo.email)}`" in readme
