"""factory_boy factories for the platform's models."""

from __future__ import annotations

from typing import Any

import factory

from portal.accounts.models import Membership, Organization, Role, User

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda number: f"user{number}@example.org")
    full_name = factory.Faker("name")

    @factory.post_generation
    def password(self: User, create: bool, extracted: str | None, **kwargs: Any) -> None:
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save(update_fields=["password"])


class OrganizationFactory(factory.django.DjangoModelFactory[Organization]):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda number: f"Practice {number}")
    kind = Organization.Kind.PRACTICE


class ClinicFactory(OrganizationFactory):
    name = factory.Sequence(lambda number: f"Clinic {number}")
    kind = Organization.Kind.CLINIC


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.PRACTICE_STAFF
    npi = ""


class ProviderMembershipFactory(MembershipFactory):
    role = Role.PROVIDER
    npi = "1234567893"
