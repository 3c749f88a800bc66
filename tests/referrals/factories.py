"""factory_boy factories for referrals, and builders for a referral in any lifecycle state.

``complete_referral_data()`` is the API/service input of a referral that passes submission.
``referral_in_state(cast, status)`` builds a complete referral of the cast's provider (entered by
the provider, signed off) already in ``status``, with the fields that state implies.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from referrals.models import (
    CONTRAINDICATION_KEYS,
    Patient,
    PriorTrial,
    Referral,
    ReferralStatus,
)
from referrals.services import patient_identity_index
from tests.factories import ClinicFactory, OrganizationFactory, UserFactory
from tests.personas import Cast

CANARY_GIVEN_NAME = "Zebulonia"
CANARY_FAMILY_NAME = "Quattlebaum-Canary"

PHQ9_EXAMPLE = [3, 3, 2, 3, 2, 2, 2, 1, 0]  # total 18, moderately severe, item 9 = 0


def complete_referral_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "patient": {
            "given_name": "Dana",
            "family_name": "Example",
            "birth_date": "1984-05-17",
            "sex": "female",
            "phone": "+1 407 555 0100",
            "email": "dana@example.org",
        },
        "reason": "Recurrent depression after two adequate trials.",
        "diagnosis_codes": ["F33.2"],
        "episode_months": 14,
        "prior_trials": [
            {
                "drug": "sertraline",
                "max_daily_dose_mg": 200,
                "weeks_at_dose": 8,
                "adherence": "good",
                "outcome": "no_response",
            },
            {
                "drug": "venlafaxine XR",
                "max_daily_dose_mg": 225,
                "weeks_at_dose": 6,
                "adherence": "good",
                "outcome": "partial_response",
            },
        ],
        "current_medications": "bupropion XL 300 mg daily",
        "allergies": "none known",
        "office_bp_systolic": 128,
        "office_bp_diastolic": 82,
        "office_heart_rate": 76,
        "phq9_answers": list(PHQ9_EXAMPLE),
        "contraindications": dict.fromkeys(CONTRAINDICATION_KEYS, False),
        "suicidal_intent": False,
        "insurance": {"payer": "Florida Blue", "member_id": "XJH123456789"},
        "consent_attested": True,
    }
    data.update(overrides)
    return data


class PatientFactory(factory.django.DjangoModelFactory[Patient]):
    class Meta:
        model = Patient

    practice = factory.SubFactory(OrganizationFactory)
    given_name = "Dana"
    family_name = "Example"
    birth_date = "1984-05-17"
    sex = "female"
    phone = "+1 407 555 0100"
    email = "dana@example.org"
    created_by = factory.SubFactory(UserFactory)
    identity_index = factory.LazyAttribute(lambda patient: patient_identity_index(patient))


class ReferralFactory(factory.django.DjangoModelFactory[Referral]):
    """A complete draft (content as in ``complete_referral_data``), numbered in year 2099 so it
    never collides with numbers the service hands out."""

    class Meta:
        model = Referral

    number = factory.Sequence(lambda number: f"R-2099-{number + 1:05d}")
    practice = factory.SubFactory(OrganizationFactory)
    clinic = factory.SubFactory(ClinicFactory)
    patient = factory.SubFactory(PatientFactory, practice=factory.SelfAttribute("..practice"))
    provider = factory.SubFactory(UserFactory)
    created_by = factory.SelfAttribute("provider")
    status = ReferralStatus.DRAFT
    reason = "Recurrent depression after two adequate trials."
    diagnosis_codes = factory.LazyFunction(lambda: ["F33.2"])
    episode_months = 14
    current_medications = "bupropion XL 300 mg daily"
    allergies = "none known"
    office_bp_systolic = 128
    office_bp_diastolic = 82
    office_heart_rate = 76
    phq9_answers = factory.LazyFunction(lambda: list(PHQ9_EXAMPLE))
    contraindications = factory.LazyFunction(lambda: dict.fromkeys(CONTRAINDICATION_KEYS, False))
    insurance = factory.LazyFunction(lambda: {"payer": "Florida Blue", "member_id": "XJH1"})
    consent_attested = True

    @factory.post_generation
    def trials(self: Referral, create: bool, extracted: int | None, **kwargs: Any) -> None:
        if not create:
            return
        count = 2 if extracted is None else extracted
        for position in range(count):
            PriorTrialFactory.create(referral=self, position=position)


class PriorTrialFactory(factory.django.DjangoModelFactory[PriorTrial]):
    class Meta:
        model = PriorTrial

    referral = factory.SubFactory(ReferralFactory)
    position = 0
    drug = "sertraline"
    max_daily_dose_mg = Decimal("200")
    weeks_at_dose = Decimal("8")
    adherence = "good"
    outcome = "no_response"


def state_fields(status: str, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The lifecycle fields a referral in ``status`` would have."""
    moment = now or timezone.now()
    fields: dict[str, Any] = {"status": status}
    if status != ReferralStatus.DRAFT:
        fields["provider_signed_off_at"] = moment - datetime.timedelta(days=3)
        fields["submitted_at"] = moment - datetime.timedelta(days=3)
        fields["triage_due_at"] = moment + datetime.timedelta(days=1)
    if status in {ReferralStatus.SCHEDULED, ReferralStatus.IN_TREATMENT}:
        # In the past, so a no-show can be recorded.
        fields["consult_at"] = moment - datetime.timedelta(hours=1)
    if status == ReferralStatus.DECLINED:
        fields["decline_reason"] = "Not eligible."
    if status == ReferralStatus.CANCELLED:
        fields["cancel_reason"] = "Withdrawn."
    return fields


def referral_in_state(cast: Cast, status: str, **overrides: Any) -> Referral:
    """A complete referral from the cast's provider (practice A) to the cast's clinic."""
    provider = cast.user("provider")
    values: dict[str, Any] = {
        "practice": cast.practice,
        "clinic": cast.clinic,
        "provider": provider,
        "created_by": provider,
        **state_fields(status),
    }
    values.update(overrides)
    return ReferralFactory.create(**values)
