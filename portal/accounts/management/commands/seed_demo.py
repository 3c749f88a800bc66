"""Create the demo clinic, practices and users (idempotent) and print the logins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.accounts.models import Organization, Role
from portal.accounts.services import membership_ensure, organization_ensure, user_ensure

DEFAULT_DEMO_PASSWORD = "Demo-Portal-2026"  # noqa: S105 - a published demo password, development only
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

        for demo in DEMO_USERS:
            organization = organization_ensure(name=demo.organization, kind=demo.kind)
            user = user_ensure(
                email=demo.email,
                full_name=demo.full_name,
                password=password,
                is_staff=demo.role == Role.CLINIC_ADMIN,
            )
            membership_ensure(user=user, organization=organization, role=demo.role, npi=demo.npi)

        self.stdout.write(self.style.SUCCESS("Demo data is ready. Sign in at " + settings.SITE_URL))
        self.stdout.write(f"Every demo user's password: {password}")
        for demo in DEMO_USERS:
            role = Role(demo.role).label
            self.stdout.write(f"  {demo.email:<36} {role:<20} {demo.organization}")
