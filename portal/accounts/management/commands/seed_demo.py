"""Create the demo clinic, practices and users (idempotent) and print the logins."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings
from django.utils.module_loading import module_has_submodule

from portal.accounts.adapters import MFAAdapter
from portal.accounts.models import Organization, Role
from portal.accounts.services import (
    membership_ensure,
    mfa_totp_enrol,
    organization_ensure,
    user_ensure,
)

DEFAULT_DEMO_PASSWORD = "Demo-Portal-2026"  # noqa: S105 - a published demo password, development only  # nosec B105
DEMO_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CLINIC_NAME = "Central Florida Ketamine"
LAKESIDE = "Lakeside Family Medicine"
ORLANDO = "Orlando Psychiatry Associates"


@dataclass(frozen=True)
class DemoUser:
    email: str
    full_name: str
    organization: str
    kind: Organization.Kind
    role: Role
    npi: str = ""


DEMO_USERS = (
    DemoUser(
        "coordinator@cfketamine.example",
        "Maria Alvarez",
        CLINIC_NAME,
        Organization.Kind.CLINIC,
        Role.COORDINATOR,
    ),
    DemoUser(
        "clinician@cfketamine.example",
        "Dr. Daniel Okafor",
        CLINIC_NAME,
        Organization.Kind.CLINIC,
        Role.CLINICIAN,
    ),
    DemoUser(
        "admin@cfketamine.example",
        "Priya Shah",
        CLINIC_NAME,
        Organization.Kind.CLINIC,
        Role.CLINIC_ADMIN,
    ),
    DemoUser(
        "pcp@lakeside.example",
        "Dr. Emily Carter",
        LAKESIDE,
        Organization.Kind.PRACTICE,
        Role.PROVIDER,
        "1234567893",
    ),
    DemoUser(
        "staff@lakeside.example",
        "Jordan Lee",
        LAKESIDE,
        Organization.Kind.PRACTICE,
        Role.PRACTICE_STAFF,
    ),
    DemoUser(
        "psychiatrist@orlandopsych.example",
        "Dr. Samuel Nguyen",
        ORLANDO,
        Organization.Kind.PRACTICE,
        Role.PROVIDER,
        "1987654328",
    ),
)


def demo_totp_secret(email: str) -> str:
    """A fixed TOTP seed per demo user (published in the README, like the demo password), so a
    person can add the demo accounts to an authenticator app once and keep them across re-seeds."""
    digest = hashlib.sha256(f"referral-portal-demo-totp:{email}".encode()).digest()
    return base64.b32encode(digest[:20]).decode("ascii")


class Command(BaseCommand):
    help = "Create the demo clinic, two practices and their users (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            default=DEFAULT_DEMO_PASSWORD,
            help="Password for every demo user (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production.")
        password: str = options["password"]
        try:
            validate_password(password)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error

        users = {}
        for demo in DEMO_USERS:
            organization = organization_ensure(name=demo.organization, kind=demo.kind)
            user = user_ensure(
                email=demo.email,
                full_name=demo.full_name,
                password=password,
                is_staff=demo.role == Role.CLINIC_ADMIN,
            )
            membership_ensure(user=user, organization=organization, role=demo.role, npi=demo.npi)
            # Every account must have MFA; the demo users come enrolled so they can sign in at once.
            mfa_totp_enrol(user=user, secret=demo_totp_secret(demo.email))
            users[demo.email] = user

        # The apps built on the portal add their own demo data from an optional ``<app>/demo.py``
        # defining ``seed_demo(*, users) -> str`` (the portal cannot import them by name).
        # Their made-up history is not e-mailed: about a hundred notices would flood the console
        # (or reach a real SMTP server for the .example addresses). In-app notifications stay,
        # and the outbox rows count as sent to the in-memory backend.
        app_lines = []
        with override_settings(EMAIL_BACKEND=DEMO_EMAIL_BACKEND):
            for app_config in apps.get_app_configs():
                if module_has_submodule(app_config.module, "demo"):
                    app_demo = import_module(f"{app_config.name}.demo")
                    app_lines.append(app_demo.seed_demo(users=users))

        self.stdout.write(self.style.SUCCESS("Demo data is ready. Sign in at " + settings.SITE_URL))
        self.stdout.write(f"Every demo user's password: {password}")
        for line in app_lines:
            self.stdout.write(line)
        for demo in DEMO_USERS:
            role = Role(demo.role).label
            self.stdout.write(f"  {demo.email:<36} {role:<20} {demo.organization}")
        self.stdout.write(
            "Two-factor authentication: add each account to an authenticator app with its key "
            "(or open the otpauth link), then sign in with the 6-digit code it shows."
        )
        adapter = MFAAdapter()
        for demo in DEMO_USERS:
            secret = demo_totp_secret(demo.email)
            self.stdout.write(f"  {demo.email:<36} TOTP key {secret}")
            self.stdout.write(f"    {adapter.build_totp_url(users[demo.email], secret)}")
