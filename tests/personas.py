"""The fixed persona cast every access matrix runs over.

| persona     | organisation               | role           |
|-------------|----------------------------|----------------|
| provider    | practice A ("Lakeside")    | provider       |
| colleague   | practice A                 | provider       |
| staff       | practice A                 | practice_staff |
| outsider    | practice B ("Orlando")     | provider       |
| coordinator | the clinic                 | coordinator    |
| clinician   | the clinic                 | clinician      |
| admin       | the clinic                 | clinic_admin   |
| anonymous   | -                          | not signed in  |

Every signed-in persona has TOTP enrolled (``secret`` holds its seed), so it passes the MFA gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from portal.accounts.models import Membership, Organization, Role, User
from tests.factories import (
    TEST_PASSWORD,
    ClinicFactory,
    MembershipFactory,
    OrganizationFactory,
    UserFactory,
)

SIGNED_IN_PERSONAS = (
    "provider",
    "colleague",
    "staff",
    "outsider",
    "coordinator",
    "clinician",
    "admin",
)
ALL_PERSONAS = (*SIGNED_IN_PERSONAS, "anonymous")
PRACTICE_PERSONAS = ("provider", "colleague", "staff")
CLINIC_PERSONAS = ("coordinator", "clinician", "admin")


@dataclass
class Persona:
    name: str
    user: User | None
    membership: Membership | None
    totp_secret: str = ""
    password: str = TEST_PASSWORD

    @property
    def signed_in(self) -> bool:
        return self.user is not None


@dataclass
class Cast:
    practice: Organization
    other_practice: Organization
    clinic: Organization
    personas: dict[str, Persona] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Persona:
        return self.personas[name]

    def user(self, name: str) -> User:
        user = self.personas[name].user
        assert user is not None, f"{name} is not signed in"
        return user


def enrol_totp(user: User) -> str:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def build_cast(*, with_mfa: bool = True) -> Cast:
    practice = OrganizationFactory.create(name="Lakeside Family Medicine")
    other_practice = OrganizationFactory.create(name="Orlando Psychiatry Associates")
    clinic = ClinicFactory.create(name="Central Florida Ketamine")
    cast = Cast(practice=practice, other_practice=other_practice, clinic=clinic)
    layout = {
        "provider": (practice, Role.PROVIDER, "1234567893"),
        "colleague": (practice, Role.PROVIDER, "1987654328"),
        "staff": (practice, Role.PRACTICE_STAFF, ""),
        "outsider": (other_practice, Role.PROVIDER, "1543210987"),
        "coordinator": (clinic, Role.COORDINATOR, ""),
        "clinician": (clinic, Role.CLINICIAN, ""),
        "admin": (clinic, Role.CLINIC_ADMIN, ""),
    }
    for name, (organization, role, npi) in layout.items():
        user = UserFactory.create(email=f"{name}@cast.example", full_name=f"{name.title()} Persona")
        membership = MembershipFactory.create(
            user=user, organization=organization, role=role, npi=npi
        )
        secret = enrol_totp(user) if with_mfa else ""
        cast.personas[name] = Persona(name, user, membership, totp_secret=secret)
    cast.personas["anonymous"] = Persona("anonymous", None, None)
    return cast
