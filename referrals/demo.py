"""Demo referrals for ``manage.py seed_demo``: every lifecycle state, in both demo practices.

``seed_demo`` calls :func:`seed_demo` of every installed app that has a ``demo`` module (the
portal cannot import the apps built on it). Each referral here is created and moved through the
lifecycle by the referral services, acting as the demo user who takes each step in real life, so
the timelines, audit events, notifications and message threads are the real thing.

Idempotent: a demo referral is skipped when its practice already has its patient, found through
the blind index exactly as the wizard's "is this the same patient?" check finds one. A few
timestamps are moved into the past afterwards, where a state can only be reached with time
passing (an overdue triage, a consult the patient missed); the services then act on them as
they would on real ones.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import Membership, Organization, Role, User
from referrals import services
from referrals.models import CONTRAINDICATION_KEYS, Referral, ReferralStatus
from referrals.selectors import patient_duplicates_for_user

logger = logging.getLogger(__name__)

S = ReferralStatus


@dataclass(frozen=True)
class Cast:
    """The demo users who act on a practice's referrals."""

    provider: User
    staff: User | None
    coordinator: User
    clinician: User


@dataclass(frozen=True)
class DemoReferral:
    practice: str
    status: ReferralStatus
    given_name: str
    family_name: str
    birth_date: str
    sex: str
    entered_by_staff: bool = False
    content: Mapping[str, Any] = field(default_factory=dict)
    attachment: str = ""
    overdue: bool = False
    missed_consult: bool = False
    answered_question: bool = False
    complete: bool = True


LAKESIDE: Final = "Lakeside Family Medicine"
ORLANDO: Final = "Orlando Psychiatry Associates"

QUESTION: Final = (
    "Could you attach the most recent psychiatric evaluation and confirm the highest venlafaxine "
    "dose and how long the patient stayed on it?"
)
ANSWER: Final = (
    "Evaluation attached. Venlafaxine XR 225 mg daily for 6 weeks, stopped for lack of effect."
)
DECLINE_REASON: Final = (
    "The referral reports current psychotic features; ketamine treatment is not appropriate now."
)
DECLINE_ADVICE: Final = (
    "We suggest an urgent psychiatric assessment; we are glad to review a new referral once the "
    "psychotic symptoms have resolved."
)
CANCEL_REASON: Final = "The patient chose to start TMS at a centre closer to home."
LETTER: Final = (
    "Referral letter (demo data, not a real patient).\n\n"
    "Psychiatric evaluation summary: recurrent major depressive disorder, current episode "
    "over a year, two adequate antidepressant trials without remission.\n"
)

SERTRALINE = {
    "drug": "sertraline",
    "max_daily_dose_mg": 200,
    "weeks_at_dose": 8,
    "adherence": "good",
    "outcome": "no_response",
}
VENLAFAXINE = {
    "drug": "venlafaxine XR",
    "max_daily_dose_mg": 225,
    "weeks_at_dose": 6,
    "adherence": "good",
    "outcome": "partial_response",
}
ESCITALOPRAM = {
    "drug": "escitalopram",
    "max_daily_dose_mg": 20,
    "weeks_at_dose": 10,
    "adherence": "good",
    "outcome": "no_response",
}
BUPROPION_INTOLERANCE = {
    "drug": "bupropion XL",
    "max_daily_dose_mg": 300,
    "weeks_at_dose": 2,
    "adherence": "partial",
    "outcome": "intolerance",
}

DEMO_REFERRALS: Final[tuple[DemoReferral, ...]] = (
    # Lakeside Family Medicine: Dr. Emily Carter (provider) and Jordan Lee (practice staff).
    DemoReferral(LAKESIDE, S.DRAFT, "Avery", "Brooks", "1990-02-11", "female", complete=False),
    DemoReferral(LAKESIDE, S.DRAFT, "Jamal", "Reyes", "1978-09-30", "male", entered_by_staff=True),
    DemoReferral(
        LAKESIDE,
        S.SUBMITTED,
        "Morgan",
        "Ellis",
        "1995-06-02",
        "other",
        content={"suicidal_intent": True, "phq9_answers": [3, 3, 3, 3, 2, 3, 2, 2, 3]},
    ),
    DemoReferral(LAKESIDE, S.SUBMITTED, "Noah", "Fischer", "1969-12-19", "male", overdue=True),
    DemoReferral(
        LAKESIDE, S.IN_REVIEW, "Priya", "Natarajan", "1987-04-23", "female", attachment=LETTER
    ),
    DemoReferral(LAKESIDE, S.INFO_REQUESTED, "Chloe", "Martin", "1982-08-14", "female"),
    DemoReferral(LAKESIDE, S.ACCEPTED, "Ethan", "Walsh", "1975-03-05", "male"),
    DemoReferral(
        LAKESIDE,
        S.DECLINED,
        "Lucas",
        "Moreau",
        "1991-11-27",
        "male",
        content={"contraindications": {"psychosis": True}},
    ),
    DemoReferral(
        LAKESIDE, S.SCHEDULED, "Sofia", "Delgado", "1986-07-08", "female", attachment=LETTER
    ),
    DemoReferral(LAKESIDE, S.IN_TREATMENT, "Marcus", "Bell", "1972-01-16", "male"),
    DemoReferral(LAKESIDE, S.COMPLETED, "Hannah", "Kim", "1989-10-03", "female"),
    DemoReferral(LAKESIDE, S.CLOSED, "Oliver", "Grant", "1964-05-21", "male"),
    DemoReferral(LAKESIDE, S.CANCELLED, "Grace", "Okoye", "1993-09-09", "female"),
    # Orlando Psychiatry Associates: Dr. Samuel Nguyen.
    DemoReferral(ORLANDO, S.DRAFT, "Isabel", "Ferreira", "1980-06-12", "female", complete=False),
    DemoReferral(
        ORLANDO,
        S.SUBMITTED,
        "Daniel",
        "Cho",
        "1984-02-29",
        "male",
        content={"contraindications": {"uncontrolled_hypertension": True}},
    ),
    DemoReferral(
        ORLANDO,
        S.IN_REVIEW,
        "Amara",
        "Nwosu",
        "1979-11-04",
        "female",
        answered_question=True,
        attachment=LETTER,
    ),
    DemoReferral(ORLANDO, S.INFO_REQUESTED, "Tomas", "Lindqvist", "1970-04-18", "male"),
    DemoReferral(
        ORLANDO, S.ACCEPTED, "Leah", "Goldberg", "1992-12-01", "female", missed_consult=True
    ),
    DemoReferral(ORLANDO, S.DECLINED, "Victor", "Santos", "1966-08-25", "male"),
    DemoReferral(ORLANDO, S.SCHEDULED, "Nadia", "Haddad", "1988-03-13", "female"),
    DemoReferral(ORLANDO, S.IN_TREATMENT, "Ryan", "O'Connell", "1977-07-29", "male"),
    DemoReferral(ORLANDO, S.COMPLETED, "Mei", "Tanaka", "1983-01-07", "female"),
    DemoReferral(ORLANDO, S.CLOSED, "Samuel", "Adeyemi", "1968-10-10", "male"),
    DemoReferral(ORLANDO, S.CANCELLED, "Elena", "Petrova", "1994-05-15", "female"),
)

PHQ9_ODD: Final = (3, 2, 2, 3, 2, 2, 2, 1, 0)  # 17, moderately severe
PHQ9_EVEN: Final = (2, 3, 2, 2, 1, 2, 2, 1, 0)  # 15, moderately severe

#: The actions that take a new draft to each state, in order.
PATHS: Final[dict[str, tuple[str, ...]]] = {
    S.DRAFT: (),
    S.SUBMITTED: ("submit",),
    S.IN_REVIEW: ("submit", "review"),
    S.INFO_REQUESTED: ("submit", "review", "request-info"),
    S.ACCEPTED: ("submit", "review", "accept"),
    S.DECLINED: ("submit", "review", "decline"),
    S.SCHEDULED: ("submit", "review", "accept", "schedule"),
    S.IN_TREATMENT: ("submit", "review", "accept", "schedule", "start-treatment"),
    S.COMPLETED: ("submit", "review", "accept", "schedule", "start-treatment", "complete"),
    S.CLOSED: (
        "submit",
        "review",
        "accept",
        "schedule",
        "start-treatment",
        "complete",
        "acknowledge",
    ),
    S.CANCELLED: ("submit", "cancel"),
}


def _content(demo: DemoReferral, position: int) -> dict[str, Any]:
    """The referral's content: complete unless the demo shows an unfinished draft."""
    patient = {
        "given_name": demo.given_name,
        "family_name": demo.family_name,
        "birth_date": demo.birth_date,
        "sex": demo.sex,
        "phone": f"+1 407 555 01{position:02d}",
        "email": f"{demo.given_name.lower()}.{demo.family_name.lower()}@example.org".replace(
            "'", ""
        ),
    }
    if not demo.complete:
        return {
            "patient": patient,
            "reason": "Depression not responding to treatment; considering ketamine.",
            "diagnosis_codes": ["F32.2"],
            "prior_trials": [SERTRALINE],
        }
    trials = [SERTRALINE, VENLAFAXINE] if position % 2 else [ESCITALOPRAM, SERTRALINE]
    if position % 3 == 0:
        trials = [*trials, BUPROPION_INTOLERANCE]
    contraindications = {
        **dict.fromkeys(CONTRAINDICATION_KEYS, False),
        **demo.content.get("contraindications", {}),
    }
    data: dict[str, Any] = {
        "patient": patient,
        "reason": (
            "Treatment-resistant depression: no remission after adequate antidepressant trials "
            "in the current episode. Referred for evaluation for ketamine infusions."
        ),
        "diagnosis_codes": ["F33.2"] if position % 2 else ["F33.1"],
        "episode_months": 9 + position,
        "prior_trials": trials,
        "current_medications": "bupropion XL 300 mg daily; trazodone 50 mg at night",
        "allergies": "none known" if position % 4 else "penicillin (rash)",
        "office_bp_systolic": 150 if contraindications["uncontrolled_hypertension"] else 124,
        "office_bp_diastolic": 96 if contraindications["uncontrolled_hypertension"] else 80,
        "office_heart_rate": 72 + position % 10,
        "phq9_answers": list(PHQ9_ODD if position % 2 else PHQ9_EVEN),
        "insurance": {"payer": "Florida Blue" if position % 2 else "Aetna", "member_id": "DEMO01"},
        "consent_attested": True,
        "suicidal_intent": False,
    }
    data.update({key: value for key, value in demo.content.items() if key != "contraindications"})
    data["contraindications"] = contraindications
    return data


def _letter() -> SimpleUploadedFile:
    return SimpleUploadedFile("referral-letter.txt", LETTER.encode(), content_type="text/plain")


def _next_consult(now: datetime.datetime, days: int) -> datetime.datetime:
    """A consult at 10:00 clinic time, ``days`` days ahead."""
    local = timezone.localtime(now) + datetime.timedelta(days=days)
    return local.replace(hour=10, minute=0, second=0, microsecond=0)


def _take(action: str, referral: Referral, cast: Cast, demo: DemoReferral) -> Referral:
    now = timezone.now()
    steps: dict[str, Callable[[], Referral]] = {
        "submit": lambda: services.referral_submit(actor=cast.provider, referral=referral),
        "review": lambda: services.referral_review(actor=cast.coordinator, referral=referral),
        "request-info": lambda: services.referral_request_info(
            actor=cast.coordinator, referral=referral, question=QUESTION
        ),
        "accept": lambda: services.referral_accept(actor=cast.coordinator, referral=referral),
        "decline": lambda: services.referral_decline(
            actor=cast.coordinator, referral=referral, reason=DECLINE_REASON, advice=DECLINE_ADVICE
        ),
        "schedule": lambda: services.referral_schedule(
            actor=cast.coordinator, referral=referral, consult_at=_next_consult(now, 3)
        ),
        "start-treatment": lambda: services.referral_start_treatment(
            actor=cast.clinician, referral=referral
        ),
        "complete": lambda: services.referral_complete(actor=cast.clinician, referral=referral),
        "acknowledge": lambda: services.referral_acknowledge(
            actor=cast.provider, referral=referral
        ),
        "cancel": lambda: services.referral_cancel(
            actor=cast.provider, referral=referral, reason=CANCEL_REASON
        ),
    }
    return steps[action]()


def _exists(demo: DemoReferral, cast: Cast, practice: Organization) -> bool:
    return patient_duplicates_for_user(
        user=cast.provider,
        practice=practice,
        given_name=demo.given_name,
        family_name=demo.family_name,
        birth_date=datetime.date.fromisoformat(demo.birth_date),
    ).exists()


def _create(demo: DemoReferral, position: int, cast: Cast) -> Referral:
    data = _content(demo, position)
    actor = cast.provider
    if demo.entered_by_staff and cast.staff is not None:
        actor = cast.staff
        data["provider"] = cast.provider.public_id
    referral = services.referral_create(actor=actor, data=data)
    if demo.attachment:
        services.attachment_upload(actor=actor, referral=referral, uploaded_file=_letter())
    path = PATHS[demo.status]
    if demo.answered_question:
        # Submitted, questioned, answered: back in review with the whole exchange on record.
        referral = _take("submit", referral, cast, demo)
        referral = _take("review", referral, cast, demo)
        referral = _take("request-info", referral, cast, demo)
        referral = services.referral_submit(actor=cast.provider, referral=referral, answer=ANSWER)
        path = ()
    for action in path:
        referral = _take(action, referral, cast, demo)
    if demo.missed_consult:
        referral = _take("schedule", referral, cast, demo)
        # The consult time has to have come before a no-show can be recorded.
        Referral.objects.filter(pk=referral.pk).update(
            consult_at=timezone.now() - datetime.timedelta(hours=2)
        )
        referral.refresh_from_db()
        referral = services.referral_record_no_show(actor=cast.coordinator, referral=referral)
    if demo.overdue:
        # Submitted a week ago and never picked up: the periodic job flags it (below).
        week_ago = timezone.now() - datetime.timedelta(days=7)
        Referral.objects.filter(pk=referral.pk).update(
            submitted_at=week_ago, triage_due_at=week_ago + datetime.timedelta(days=2)
        )
    return referral


def _member(organization: Organization, role: Role) -> User | None:
    membership = (
        Membership.objects.filter(
            organization=organization, role=role, is_active=True, user__is_active=True
        )
        .select_related("user")
        .order_by("pk")
        .first()
    )
    return membership.user if membership is not None else None


def _casts(clinic: Organization) -> dict[str, tuple[Organization, Cast]]:
    coordinator = _member(clinic, Role.COORDINATOR)
    clinician = _member(clinic, Role.CLINICIAN)
    casts: dict[str, tuple[Organization, Cast]] = {}
    for name in (LAKESIDE, ORLANDO):
        practice = Organization.objects.filter(name=name, kind=Organization.Kind.PRACTICE).first()
        provider = _member(practice, Role.PROVIDER) if practice is not None else None
        if practice is None or provider is None or coordinator is None or clinician is None:
            continue
        staff = _member(practice, Role.PRACTICE_STAFF)
        casts[name] = (practice, Cast(provider, staff, coordinator, clinician))
    return casts


def seed_demo(*, users: Mapping[str, User]) -> str:
    """Create the demo referrals that do not exist yet; returns a line for the command output.

    ``users`` (the demo users by e-mail) is what ``seed_demo`` made; the practices' and the
    clinic's people are looked up by their roles, so renaming a demo user changes nothing here.
    """
    clinic = Organization.objects.filter(kind=Organization.Kind.CLINIC).order_by("pk").first()
    if clinic is None or not users:
        return "Demo referrals: skipped (no demo clinic)."
    casts = _casts(clinic)
    created = 0
    # seed_demo sends this made-up history to the in-memory e-mail backend.
    with transaction.atomic():
        for position, demo in enumerate(DEMO_REFERRALS, start=1):
            if demo.practice not in casts:
                continue
            practice, cast = casts[demo.practice]
            if _exists(demo, cast, practice):
                continue
            _create(demo, position, cast)
            created += 1
        flagged = services.referral_flag_overdue()
    logger.info(
        "referrals.demo_seeded", extra={"referrals_created": created, "overdue_flagged": flagged}
    )
    if not created:
        return "Demo referrals: already present."
    return f"Demo referrals: {created} created, in every state across both practices."
