"""Business rules of creating, editing, signing off and submitting referrals (services)."""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.models import AuditEvent
from portal.notifications.models import Notification
from referrals import hooks, services
from referrals.models import EventKind, Referral, ReferralEvent
from tests.factories import MembershipFactory, ProviderMembershipFactory
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data, referral_in_state
from tests.referrals.helpers import Snapshot, enqueued


def _create(cast: Cast, persona: str, **overrides: Any) -> Referral:
    data = complete_referral_data(**overrides)
    birth_date = data["patient"].get("birth_date")
    if isinstance(birth_date, str):
        # The service takes what the API's serializer produces: a date.
        data["patient"]["birth_date"] = datetime.date.fromisoformat(birth_date)
    return services.referral_create(actor=cast.user(persona), data=data)


# --- create ----------------------------------------------------------------------------------


def test_a_provider_creates_a_numbered_draft_for_themself(cast: Cast) -> None:
    referral = _create(cast, "provider")

    year = timezone.localtime().year
    assert re.fullmatch(rf"R-{year}-\d{{5}}", referral.number)
    assert (referral.status, referral.practice, referral.clinic) == (
        "draft",
        cast.practice,
        cast.clinic,
    )
    assert referral.provider == referral.created_by == cast.user("provider")
    assert referral.provider_signed_off_at is None
    assert [trial.drug for trial in referral.prior_trials.order_by("position")] == [
        "sertraline",
        "venlafaxine XR",
    ]
    assert referral.patient.birth_date == "1984-05-17"
    assert len(referral.patient.identity_index) == 64
    event = ReferralEvent.objects.get(referral=referral)
    assert (event.kind, event.to_status) == ("created", "draft")
    assert (
        AuditEvent.objects.filter(
            action="referral.created", object_id=str(referral.public_id), outcome="allowed"
        ).count()
        == 1
    )


def test_numbers_follow_each_other_within_the_year(cast: Cast) -> None:
    first = _create(cast, "provider")
    second = _create(cast, "colleague")

    assert int(second.number[-5:]) == int(first.number[-5:]) + 1


def test_practice_staff_must_name_a_provider_of_their_own_practice(cast: Cast) -> None:
    before = Snapshot.take()
    with pytest.raises(ServiceError) as missing:
        _create(cast, "staff")
    assert missing.value.extra["fields"] == {
        "provider": "Required: choose the provider this referral is for."
    }

    with pytest.raises(ServiceError) as foreign:
        _create(cast, "staff", provider=cast.user("outsider").public_id)
    assert foreign.value.extra["fields"] == {
        "provider": "Choose an active provider of your practice."
    }
    assert Snapshot.take() == before

    referral = _create(cast, "staff", provider=cast.user("colleague").public_id)
    assert (referral.provider, referral.created_by) == (cast.user("colleague"), cast.user("staff"))


def test_a_provider_cannot_refer_in_another_providers_name(cast: Cast) -> None:
    before = Snapshot.take()
    with pytest.raises(ServiceError) as error:
        _create(cast, "provider", provider=cast.user("colleague").public_id)
    assert error.value.extra["fields"] == {
        "provider": "A provider refers their own patients; leave this empty."
    }
    assert Snapshot.take() == before


@pytest.mark.parametrize("persona", ["coordinator", "clinician", "admin"])
def test_clinic_staff_cannot_create_referrals(cast: Cast, persona: str) -> None:
    before = Snapshot.take()
    with pytest.raises(Forbidden):
        _create(cast, persona)
    after = Snapshot.take()
    assert after == before
    assert AuditEvent.objects.filter(action="referral.create", outcome="denied").count() == 1


def test_unknown_keys_are_refused_by_the_service_too(cast: Cast) -> None:
    before = Snapshot.take()
    with pytest.raises(ServiceError) as error:
        services.referral_create(
            actor=cast.user("provider"), data={"status": "accepted", "practice_id": 1}
        )
    assert error.value.extra["fields"] == {
        "practice_id": "Unknown field.",
        "status": "Unknown field.",
    }
    assert Snapshot.take() == before


def test_a_single_clinic_is_the_default_and_a_second_one_must_be_named(cast: Cast) -> None:
    from tests.factories import ClinicFactory

    ClinicFactory.create(name="Another Clinic")
    with pytest.raises(ServiceError) as error:
        _create(cast, "provider")
    assert error.value.extra["fields"] == {"clinic": "Required: choose the receiving clinic."}

    referral = _create(cast, "provider", clinic=cast.clinic.public_id)
    assert referral.clinic == cast.clinic


def test_a_member_of_two_practices_names_the_practice(cast: Cast) -> None:
    ProviderMembershipFactory.create(user=cast.user("provider"), npi="1234567893")
    with pytest.raises(ServiceError) as error:
        _create(cast, "provider")
    assert error.value.extra["fields"] == {
        "practice": "Required: you belong to more than one practice."
    }
    referral = _create(cast, "provider", practice=cast.practice.public_id)
    assert referral.practice == cast.practice


# --- duplicates ------------------------------------------------------------------------------


def test_the_same_patient_is_found_through_the_blind_index_within_the_practice(
    cast: Cast,
) -> None:
    from referrals.selectors import referral_possible_duplicates

    first = _create(cast, "provider")
    second = _create(
        cast,
        "colleague",
        patient={
            "given_name": "  DANA ",
            "family_name": "example",
            "birth_date": datetime.date(1984, 5, 17),
        },
    )
    other_birth_date = _create(
        cast,
        "provider",
        patient={
            "given_name": "Dana",
            "family_name": "Example",
            "birth_date": datetime.date(1984, 5, 18),
        },
    )
    elsewhere = _create(cast, "outsider")

    assert list(referral_possible_duplicates(referral=second)) == [first]
    assert list(referral_possible_duplicates(referral=other_birth_date)) == []
    assert list(referral_possible_duplicates(referral=elsewhere)) == []

    reused = _create(cast, "provider", patient_id=first.patient.public_id, patient={})
    assert reused.patient == first.patient
    with pytest.raises(ServiceError) as error:
        _create(cast, "outsider", patient_id=first.patient.public_id, patient={})
    assert error.value.extra["fields"] == {"patient_id": "Unknown patient."}


# --- edit --------------------------------------------------------------------------------------


def test_update_merges_objects_and_replaces_lists(cast: Cast) -> None:
    referral = _create(cast, "provider")

    services.referral_update(
        actor=cast.user("provider"),
        referral=referral,
        data={
            "patient": {"phone": "+1 321 555 0199"},
            "contraindications": {"pregnancy": True},
            "prior_trials": [{"drug": "escitalopram"}],
            "diagnosis_codes": ["F32.2"],
        },
    )

    referral = Referral.objects.get(pk=referral.pk)
    assert (referral.patient.given_name, referral.patient.phone) == ("Dana", "+1 321 555 0199")
    assert referral.contraindications["pregnancy"] is True
    assert referral.contraindications["psychosis"] is False
    assert [trial.drug for trial in referral.prior_trials.all()] == ["escitalopram"]
    assert referral.diagnosis_codes == ["F32.2"]
    event = ReferralEvent.objects.filter(referral=referral).latest("created_at", "id")
    assert event.kind == "updated"
    audit = AuditEvent.objects.filter(action="referral.updated").get()
    assert audit.details["fields"] == "contraindications,diagnosis_codes,patient,prior_trials"


def test_an_edit_changing_nothing_records_nothing(cast: Cast) -> None:
    referral = _create(cast, "provider")
    before = Snapshot.take()

    services.referral_update(
        actor=cast.user("provider"), referral=referral, data={"reason": referral.reason}
    )

    assert Snapshot.take() == before


@pytest.mark.parametrize(
    "state", ["submitted", "in_review", "accepted", "scheduled", "completed", "closed"]
)
def test_a_submitted_referral_cannot_be_edited(cast: Cast, state: str) -> None:
    referral = referral_in_state(cast, state)
    before = Snapshot.take()

    with pytest.raises(Conflict) as error:
        services.referral_update(
            actor=cast.user("provider"), referral=referral, data={"reason": "changed"}
        )

    assert error.value.code == "not_editable"
    assert error.value.extra["status"] == state
    assert Snapshot.take() == before
    assert Referral.objects.get(pk=referral.pk).reason != "changed"


@pytest.mark.parametrize("persona", ["colleague", "coordinator", "clinician", "admin"])
def test_only_the_referrer_and_practice_staff_edit(cast: Cast, persona: str) -> None:
    referral = referral_in_state(cast, "info_requested")
    before = Snapshot.take()

    with pytest.raises(Forbidden):
        services.referral_update(
            actor=cast.user(persona), referral=referral, data={"reason": "changed"}
        )

    assert Snapshot.take() == before


def test_outsiders_get_not_found_and_the_denial_is_audited(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    before = Snapshot.take()

    with pytest.raises(NotFound):
        services.referral_update(
            actor=cast.user("outsider"), referral=referral, data={"reason": "changed"}
        )

    assert Snapshot.take() == before
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.object_id, denied.actor) == (
        "referral.update",
        str(referral.public_id),
        cast.user("outsider"),
    )


# --- sign-off and submission -------------------------------------------------------------------


def test_staff_enter_the_provider_signs_off_staff_submit(cast: Cast) -> None:
    staff, provider = cast.user("staff"), cast.user("provider")
    referral = _create(cast, "staff", provider=provider.public_id)

    with pytest.raises(Conflict) as unsigned:
        services.referral_submit(actor=staff, referral=referral)
    assert unsigned.value.code == "sign_off_required"
    assert unsigned.value.extra["allowed_actions"] == ["cancel"]

    with pytest.raises(Forbidden):
        services.referral_sign_off(actor=staff, referral=referral)
    with pytest.raises(Forbidden):
        services.referral_sign_off(actor=cast.user("colleague"), referral=referral)

    services.referral_sign_off(actor=provider, referral=referral)
    assert Notification.objects.filter(event="referral.signed_off", recipient=staff).count() == 1
    with pytest.raises(Conflict) as twice:
        services.referral_sign_off(actor=provider, referral=referral)
    assert twice.value.code == "already_signed_off"

    # A staff edit after the sign-off withdraws it: the provider signed the content as it was.
    services.referral_update(actor=staff, referral=referral, data={"episode_months": 15})
    referral.refresh_from_db()
    assert referral.provider_signed_off_at is None
    services.referral_sign_off(actor=provider, referral=referral)

    submitted = services.referral_submit(actor=staff, referral=referral)
    assert submitted.status == "submitted"


def test_the_providers_own_edit_keeps_their_sign_off(cast: Cast) -> None:
    provider = cast.user("provider")
    referral = _create(cast, "staff", provider=provider.public_id)
    services.referral_sign_off(actor=provider, referral=referral)

    services.referral_update(actor=provider, referral=referral, data={"episode_months": 15})

    referral.refresh_from_db()
    assert referral.provider_signed_off_at is not None


def test_submission_names_every_missing_field(cast: Cast) -> None:
    provider = cast.user("provider")
    referral = services.referral_create(
        actor=provider,
        data={
            "patient": {"given_name": "Dana"},
            "prior_trials": [{"drug": "sertraline", "adherence": "good"}],
            "phq9_answers": [1, 1, 1, None, 1, 1, 1, 1, None],
            "contraindications": {"psychosis": False, "pregnancy": True},
        },
    )
    before = Snapshot.take()

    with pytest.raises(ServiceError) as error:
        services.referral_submit(actor=provider, referral=referral)

    assert error.value.status_code == 400
    assert error.value.code == "incomplete"
    assert error.value.extra["fields"] == {
        "patient.family_name": "Required.",
        "patient.birth_date": "Required.",
        "patient.sex": "Required.",
        "patient.phone": "Required.",
        "reason": "Required.",
        "diagnosis_codes": "At least one diagnosis code (F31.x, F32.x, F33.x).",
        "episode_months": "Required.",
        "prior_trials.0.max_daily_dose_mg": "Required.",
        "prior_trials.0.weeks_at_dose": "Required.",
        "prior_trials.0.outcome": "Required.",
        "current_medications": 'Required (write "none" if there are none).',
        "allergies": 'Required (write "none" if there are none).',
        "office_bp_systolic": "Required.",
        "office_bp_diastolic": "Required.",
        "office_heart_rate": "Required.",
        "phq9_answers.3": "Item 4 is required.",
        "phq9_answers.8": "Item 9 is required.",
        "contraindications.substance_use_disorder": "Answer yes or no.",
        "contraindications.uncontrolled_hypertension": "Answer yes or no.",
        "contraindications.vascular_aneurysm_or_avm": "Answer yes or no.",
        "contraindications.ketamine_hypersensitivity": "Answer yes or no.",
        "insurance.payer": 'Required (write "self-pay" if uninsured).',
        "consent_attested": "The patient's consent to the referral must be attested.",
    }
    assert Snapshot.take() == before


def test_submission_starts_the_triage_clock_in_business_days(cast: Cast, time_machine: Any) -> None:
    # Friday 15:00 in the clinic's time zone: due Tuesday 15:00.
    friday = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=timezone.get_current_timezone())
    time_machine.move_to(friday, tick=False)
    referral = _create(cast, "provider")

    submitted = services.referral_submit(actor=cast.user("provider"), referral=referral)

    assert submitted.submitted_at == friday
    assert submitted.provider_signed_off_at == friday
    assert timezone.localtime(submitted.triage_due_at) == friday + datetime.timedelta(days=4)


def test_answering_an_information_request_returns_to_review_with_the_answer(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_review")
    services.referral_request_info(
        actor=cast.user("coordinator"), referral=referral, question="Latest evaluation?"
    )

    with pytest.raises(ServiceError) as unanswered:
        services.referral_submit(actor=cast.user("provider"), referral=referral)
    assert unanswered.value.extra["fields"] == {"answer": "Required."}

    answered = services.referral_submit(
        actor=cast.user("staff"), referral=referral, answer="  Attached today.  "
    )

    assert answered.status == "in_review"
    event = ReferralEvent.objects.filter(referral=referral).latest("created_at", "id")
    assert (event.kind, event.note, event.actor) == (
        "answered",
        "Attached today.",
        cast.user("staff"),
    )
    question = ReferralEvent.objects.get(referral=referral, kind="info_requested")
    assert question.note == "Latest evaluation?"


def test_an_answer_on_a_draft_is_refused(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    with pytest.raises(ServiceError) as error:
        services.referral_submit(actor=cast.user("provider"), referral=referral, answer="Hi")
    assert error.value.extra["fields"] == {
        "answer": "The clinic has not asked a question to answer."
    }


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda actor, r: services.referral_request_info(actor=actor, referral=r, question=" "),
         "question"),
        (lambda actor, r: services.referral_decline(actor=actor, referral=r, reason=""), "reason"),
    ],
)  # fmt: skip
def test_questions_and_reasons_are_required(
    cast: Cast, call: Callable[..., Referral], field: str
) -> None:
    referral = referral_in_state(cast, "in_review")
    before = Snapshot.take()
    with pytest.raises(ServiceError) as error:
        call(cast.user("coordinator"), referral)
    assert error.value.extra["fields"] == {field: "Required."}
    assert Snapshot.take() == before


def test_a_consult_must_be_in_the_future_and_zoned(cast: Cast) -> None:
    referral = referral_in_state(cast, "accepted")
    coordinator = cast.user("coordinator")
    with pytest.raises(ServiceError) as past:
        services.referral_schedule(
            actor=coordinator,
            referral=referral,
            consult_at=timezone.now() - datetime.timedelta(minutes=1),
        )
    assert past.value.extra["fields"] == {"consult_at": "The consult must be in the future."}
    with pytest.raises(ServiceError) as naive:
        services.referral_schedule(
            actor=coordinator,
            referral=referral,
            consult_at=datetime.datetime(2030, 1, 1, 9),  # noqa: DTZ001 - naive on purpose
        )
    assert naive.value.extra["fields"] == {
        "consult_at": "A date and time with a time zone is required."
    }


# --- suicidal intent ---------------------------------------------------------------------------


def test_suicidal_intent_makes_the_referral_urgent_and_alerts_the_clinic_at_submission(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    referral = _create(cast, "provider", suicidal_intent=True, urgent=False)
    assert referral.urgent is True
    # A draft is the practice's own: nobody at the clinic is told yet.
    assert Notification.objects.count() == 0

    with django_capture_on_commit_callbacks() as callbacks:
        services.referral_submit(actor=cast.user("provider"), referral=referral)

    alerts = Notification.objects.filter(event="referral.urgent_alert")
    assert sorted(alert.recipient.email for alert in alerts) == [
        "clinician@cast.example",
        "coordinator@cast.example",
    ]
    assert all(alert.urgent for alert in alerts)
    assert not Notification.objects.filter(event="referral.submitted").exists()
    assert ReferralEvent.objects.filter(referral=referral, kind="urgent_alert").count() == 1
    assert len(enqueued(callbacks)) == 1


def test_suicidal_intent_reported_while_the_clinic_waits_alerts_at_once(cast: Cast) -> None:
    referral = referral_in_state(cast, "info_requested")

    services.referral_update(
        actor=cast.user("provider"), referral=referral, data={"suicidal_intent": True}
    )

    referral.refresh_from_db()
    assert referral.urgent is True
    assert Notification.objects.filter(event="referral.urgent_alert", urgent=True).count() == 2


# --- hooks ---------------------------------------------------------------------------------------


def test_event_handlers_see_every_event_inside_the_transaction(cast: Cast) -> None:
    seen: list[tuple[str, str]] = []

    def handler(event: ReferralEvent) -> None:
        seen.append((event.kind, event.referral.status))

    hooks.register_referral_event_handler(handler)
    hooks.register_referral_event_handler(handler)  # registering twice changes nothing
    try:
        referral = _create(cast, "provider")
        services.referral_submit(actor=cast.user("provider"), referral=referral)
        services.referral_review(actor=cast.user("coordinator"), referral=referral)
    finally:
        hooks.unregister_referral_event_handler(handler)

    assert seen == [("created", "draft"), ("submitted", "submitted"), ("reviewed", "in_review")]


def test_a_failing_handler_rolls_the_action_back(cast: Cast) -> None:
    referral = referral_in_state(cast, "submitted")
    before = Snapshot.take()

    def handler(event: ReferralEvent) -> None:
        raise RuntimeError("thread could not be created")

    hooks.register_referral_event_handler(handler)
    try:
        with pytest.raises(RuntimeError):
            services.referral_review(actor=cast.user("coordinator"), referral=referral)
    finally:
        hooks.unregister_referral_event_handler(handler)

    assert Snapshot.take() == before


def test_an_inactive_membership_loses_access_at_once(cast: Cast) -> None:
    referral = referral_in_state(cast, "submitted")
    membership = cast["coordinator"].membership
    assert membership is not None
    membership.is_active = False
    membership.save(update_fields=["is_active"])

    with pytest.raises(NotFound):
        services.referral_review(actor=cast.user("coordinator"), referral=referral)


def test_a_second_clinic_does_not_see_the_first_clinics_referrals(cast: Cast) -> None:
    referral = referral_in_state(cast, "submitted")
    other = MembershipFactory.create(role="coordinator", organization__kind="clinic")

    with pytest.raises(NotFound):
        services.referral_review(actor=other.user, referral=referral)


# --- legal hold and numbering under concurrency ------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "error"),
    [("admin", None), ("coordinator", Forbidden), ("provider", Forbidden), ("outsider", NotFound)],
)
def test_only_a_clinic_admin_sets_a_legal_hold(
    cast: Cast, persona: str, error: type[Exception] | None
) -> None:
    referral = referral_in_state(cast, "submitted")
    if error is not None:
        before = Snapshot.take()
        with pytest.raises(error):
            services.referral_set_legal_hold(
                actor=cast.user(persona), referral=referral, legal_hold=True
            )
        assert Snapshot.take() == before
        assert Referral.objects.get(pk=referral.pk).legal_hold is False
        return

    services.referral_set_legal_hold(actor=cast.user(persona), referral=referral, legal_hold=True)

    assert Referral.objects.get(pk=referral.pk).legal_hold is True
    audit = AuditEvent.objects.get(action="referral.legal_hold")
    assert audit.details["legal_hold"] is True


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_get_distinct_consecutive_numbers() -> None:
    from django.conf import settings
    from django.db import connection

    from tests.personas import build_cast

    if not settings.USES_POSTGRESQL:
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite runs one writer at a time anyway")
    cast = build_cast(with_mfa=False)
    provider = cast.user("provider")
    barrier = threading.Barrier(4)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait(timeout=10)
            numbers.append(services.referral_create(actor=provider, data={}).number)
        except BaseException as error:  # reported below: a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    sequence = sorted(int(number[-5:]) for number in numbers)
    assert sequence == list(range(sequence[0], sequence[0] + 4))


def test_other_apps_record_report_events_but_never_state_changes(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    seen: list[str] = []

    def handler(event: ReferralEvent) -> None:
        seen.append(event.kind)

    hooks.register_referral_event_handler(handler)
    try:
        event = services.referral_event_record(
            referral=referral, kind=EventKind.REPORT_READY, actor=None, note="Report 1 ready."
        )
        with pytest.raises(ValueError, match="recorded by the referral's own services only"):
            services.referral_event_record(
                referral=referral, kind=EventKind.COMPLETED, actor=cast.user("clinician")
            )
    finally:
        hooks.unregister_referral_event_handler(handler)

    assert (event.kind, event.actor, event.note) == ("report_ready", None, "Report 1 ready.")
    assert seen == ["report_ready"]
    assert Referral.objects.get(pk=referral.pk).status == "in_treatment"
