"""Every write to referrals: one function per action, each in one transaction.

Each lifecycle action locks the referral row, checks who may do it from which state with the
transition table (``referrals.transitions``) and the predicates of ``referrals.permissions``,
writes the new state, a timeline event and an audit event, calls the registered referral event
handlers (``referrals.hooks``) and records notifications, whose e-mails go out on commit.

Errors (mapped by the API's exception handler):

- ``NotFound`` (404): the referral is not visible to the actor (the denial is audited);
- ``Forbidden`` (403, ``permission_denied``): the actor is a party but never takes this action
  (practice users cannot triage, a colleague cannot act on another provider's referral);
- ``Conflict`` (409, ``invalid_transition``): not from the current state; the body carries
  ``status`` and the actor's ``allowed_actions``. Guards answer 409 with their own code
  (``sign_off_required``, ``already_signed_off``, ``consult_not_started``);
- ``ServiceError`` (400): bad input; ``incomplete`` with per-field ``fields`` at submission.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Any, Final

from django.db import transaction
from django.utils import timezone

from portal.accounts.models import Organization, Role, User
from portal.accounts.selectors import clinic_staff_for_clinic
from portal.api.errors import Conflict, Forbidden, NotFound, ServiceError
from portal.audit.services import audit_denied, audit_record
from portal.crypto.blind_index import patient_blind_index
from portal.crypto.keys import blind_index_key
from portal.crypto.storage import store_encrypted_file
from portal.notifications.services import notify
from portal.uploads import validate_upload
from referrals import hooks, permissions, transitions
from referrals.models import (
    CONTRAINDICATION_KEYS,
    Attachment,
    ClinicSettings,
    EventKind,
    Patient,
    PriorTrial,
    Referral,
    ReferralEvent,
    ReferralNumberSequence,
    ReferralStatus,
)
from referrals.permissions import Access, access_for
from referrals.screening import PHQ9_ITEMS
from referrals.sla import add_business_days, is_overdue

logger = logging.getLogger(__name__)

S = ReferralStatus

PATIENT_KEYS: Final = frozenset(
    {"given_name", "family_name", "birth_date", "sex", "phone", "email"}
)
TRIAL_KEYS: Final = frozenset(
    {"drug", "max_daily_dose_mg", "weeks_at_dose", "adherence", "outcome"}
)
INSURANCE_KEYS: Final = frozenset({"payer", "member_id", "group_number"})
#: Plain (scalar or replaced-as-a-whole) content fields of the referral itself.
CONTENT_FIELDS: Final = (
    "urgent",
    "reason",
    "diagnosis_codes",
    "episode_months",
    "current_medications",
    "allergies",
    "office_bp_systolic",
    "office_bp_diastolic",
    "office_heart_rate",
    "phq9_answers",
    "suicidal_intent",
    "consent_attested",
)
#: Fields merged key by key on update (JSON merge-patch semantics: objects merge, lists replace).
MERGED_FIELDS: Final = ("contraindications", "insurance")
CONTENT_KEYS: Final = frozenset(
    {*CONTENT_FIELDS, *MERGED_FIELDS, "patient", "prior_trials", "provider"}
)
CREATE_KEYS: Final = CONTENT_KEYS | {"practice", "clinic", "patient_id"}
UPDATE_KEYS: Final = CONTENT_KEYS

REQUIRED: Final = "Required."
REFERRAL_PATH: Final = "/referrals/{public_id}/"


def referral_portal_path(referral: Referral) -> str:
    """The portal page of a referral (used as the notification link)."""
    return REFERRAL_PATH.format(public_id=referral.public_id)


def clinic_settings_for(clinic: Organization) -> ClinicSettings:
    """The clinic's referral settings, or unsaved defaults when it has no row (no query when the
    clinic was read with ``select_related("clinic__referral_settings")``)."""
    try:
        return clinic.referral_settings
    except ClinicSettings.DoesNotExist:
        return ClinicSettings(clinic=clinic)


# --- shared steps --------------------------------------------------------------------------------


def _invalid(fields: Mapping[str, str], detail: str = "Invalid input.") -> ServiceError:
    return ServiceError(detail, code="invalid", extra={"fields": dict(fields)})


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _invalid(dict.fromkeys(unknown, "Unknown field."), "Unknown fields.")


def _audit_denied(actor: User | None, action: str, referral: Referral | None) -> None:
    audit_denied(
        actor=actor,
        action=action,
        object_type="referral",
        object_id=referral.public_id if referral is not None else None,
    )


class _Denied(Exception):
    """Raised inside a transaction so it rolls back; the denial is audited after the rollback."""

    def __init__(self, error: ServiceError, action: str, referral: Referral | None) -> None:
        super().__init__(error.detail)
        self.error = error
        self.action = action
        self.referral = referral


def _run_denying(actor: User, work: Callable[[], Referral]) -> Referral:
    """Run ``work`` in a transaction; a ``_Denied`` rolls it back, then leaves an audit row
    (written after the rollback, so it is kept whatever the caller's transaction does next)."""
    try:
        with transaction.atomic():
            return work()
    except _Denied as denied:
        _audit_denied(actor, denied.action, denied.referral)
        raise denied.error from None


def _lock(referral: Referral) -> Referral:
    locked = (
        Referral.objects.select_for_update(of=("self",))
        .select_related("practice", "clinic", "provider", "created_by", "patient")
        .filter(pk=referral.pk)
        .first()
    )
    if locked is None:
        raise NotFound()
    return locked


def _record_event(
    *,
    referral: Referral,
    kind: EventKind,
    actor: User | None,
    from_status: str = "",
    to_status: str = "",
    note: str = "",
) -> ReferralEvent:
    event = ReferralEvent.objects.create(
        referral=referral,
        kind=kind,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        note=note,
    )
    hooks.dispatch_referral_event(event)
    return event


#: Timeline events other apps may record: facts about the referral that are not state changes.
RECORDABLE_EVENT_KINDS: Final = frozenset({EventKind.REPORT_READY, EventKind.REPORT_SIGNED})


def referral_event_record(
    *, referral: Referral, kind: EventKind, actor: User | None, note: str = ""
) -> ReferralEvent:
    """Record a timeline event that is not a state change (e.g. a progress report is ready).

    For the apps built on referrals (reports); call it inside the caller's transaction, which has
    already checked the actor's rights. The registered handlers run as for every other event
    (messaging posts it into the referral's thread). ``note`` is encrypted like every note.
    """
    if kind not in RECORDABLE_EVENT_KINDS:
        raise ValueError(f"{kind!r} is recorded by the referral's own services only")
    return _record_event(referral=referral, kind=kind, actor=actor, note=note)


def _audit(
    actor: User | None, action: str, referral: Referral, **details: str | int | bool
) -> None:
    audit_record(
        actor=actor,
        action=action,
        object_type="referral",
        object_id=referral.public_id,
        details={"number": referral.number, **details},
    )


def _practice_side(referral: Referral) -> list[User]:
    """The provider and whoever entered the referral (staff acting on the provider's behalf)."""
    return [referral.provider, referral.created_by]


def _clinic_side(referral: Referral, roles: Iterable[str]) -> list[User]:
    return list(clinic_staff_for_clinic(referral.clinic, roles=list(roles)))


# Who hears about which event. Practice-facing events go to the provider and the user who entered
# the referral; clinic-facing ones to the named clinic roles.
_PRACTICE_EVENTS: Final = frozenset(
    {
        EventKind.SIGNED_OFF,
        EventKind.REVIEWED,
        EventKind.INFO_REQUESTED,
        EventKind.ACCEPTED,
        EventKind.DECLINED,
        EventKind.SCHEDULED,
        EventKind.NO_SHOW,
        EventKind.TREATMENT_STARTED,
        EventKind.COMPLETED,
    }
)
_CLINIC_EVENTS: Final[dict[str, tuple[str, ...]]] = {
    EventKind.SUBMITTED: (Role.COORDINATOR,),
    EventKind.ANSWERED: (Role.COORDINATOR,),
    EventKind.ATTACHMENT_ADDED: (Role.COORDINATOR,),
    EventKind.CANCELLED: (Role.COORDINATOR, Role.CLINICIAN),
    EventKind.CLOSED: (Role.COORDINATOR, Role.CLINICIAN),
    EventKind.URGENT_ALERT: (Role.COORDINATOR, Role.CLINICIAN),
    EventKind.OVERDUE: (Role.COORDINATOR,),
}


def _notify_event(referral: Referral, kind: EventKind, actor: User | None) -> None:
    if kind in _PRACTICE_EVENTS:
        recipients = _practice_side(referral)
    elif kind in _CLINIC_EVENTS:
        if referral.submitted_at is None:
            # Never submitted: the clinic has not seen it (a draft's upload or cancellation).
            return
        recipients = _clinic_side(referral, _CLINIC_EVENTS[kind])
    else:
        return
    notify(
        recipients=recipients,
        event=f"referral.{kind}",
        reference=referral.number,
        link=referral_portal_path(referral),
        actor=actor,
        urgent=kind == EventKind.URGENT_ALERT or (kind in _CLINIC_EVENTS and referral.urgent),
    )


def _alert_urgent(referral: Referral, actor: User | None) -> None:
    """Active suicidal intent: never queued. The clinic hears at once, by e-mail too."""
    _record_event(referral=referral, kind=EventKind.URGENT_ALERT, actor=actor)
    _audit(actor, "referral.urgent_alert", referral)
    _notify_event(referral, EventKind.URGENT_ALERT, actor)
    logger.warning("referral.urgent_alert", extra={"referral": str(referral.public_id)})


# --- numbers, patients, content ------------------------------------------------------------------


def _allocate_number(now: datetime) -> str:
    """The next "R-YYYY-NNNNN" of the year; the year's counter row is locked, so two concurrent
    creations never get the same number (and the unique constraint would refuse it anyway)."""
    year = timezone.localtime(now).year
    ReferralNumberSequence.objects.get_or_create(year=year)
    sequence = ReferralNumberSequence.objects.select_for_update().get(year=year)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"R-{year}-{sequence.last_value:05d}"


def patient_identity_index(patient: Patient) -> str:
    if not (patient.given_name and patient.family_name and patient.birth_date):
        return ""
    return patient_blind_index(
        blind_index_key(), patient.given_name, patient.family_name, patient.birth_date
    )


def _apply_patient(patient: Patient, values: Mapping[str, Any]) -> list[str]:
    _check_keys(values, PATIENT_KEYS)
    changed: list[str] = []
    for key, value in values.items():
        text = value.isoformat() if hasattr(value, "isoformat") else (value or "")
        if getattr(patient, key) != text:
            setattr(patient, key, text)
            changed.append(key)
    index = patient_identity_index(patient)
    if index != patient.identity_index:
        patient.identity_index = index
        changed.append("identity_index")
    return changed


def _replace_trials(referral: Referral, trials: Sequence[Mapping[str, Any]]) -> None:
    for trial in trials:
        _check_keys(trial, TRIAL_KEYS)
    referral.prior_trials.all().delete()
    PriorTrial.objects.bulk_create(
        [
            PriorTrial(
                referral=referral,
                position=position,
                drug=trial.get("drug") or "",
                max_daily_dose_mg=trial.get("max_daily_dose_mg"),
                weeks_at_dose=trial.get("weeks_at_dose"),
                adherence=trial.get("adherence") or "",
                outcome=trial.get("outcome") or "",
            )
            for position, trial in enumerate(trials)
        ]
    )


def _apply_content(referral: Referral, data: Mapping[str, Any]) -> list[str]:
    """Set the referral's own content fields from ``data``; returns the changed field names."""
    changed: list[str] = []
    for name in CONTENT_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if value is None and name in {"reason", "current_medications", "allergies"}:
            value = ""
        if value is None and name in {"urgent", "suicidal_intent", "consent_attested"}:
            value = False
        if value is None and name in {"diagnosis_codes", "phq9_answers"}:
            value = []
        if getattr(referral, name) != value:
            setattr(referral, name, value)
            changed.append(name)
    merged_fields = (
        ("contraindications", frozenset(CONTRAINDICATION_KEYS)),
        ("insurance", INSURANCE_KEYS),
    )
    for name, allowed in merged_fields:
        if name not in data:
            continue
        patch = data[name] or {}
        _check_keys(patch, allowed)
        merged = {**(getattr(referral, name) or {})}
        for key, value in patch.items():
            if value is None or value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != getattr(referral, name):
            setattr(referral, name, merged)
            changed.append(name)
    if referral.suicidal_intent and not referral.urgent:
        # Active suicidal intent always makes a referral urgent, whatever the form said.
        referral.urgent = True
        if "urgent" not in changed:
            changed.append("urgent")
    return changed


def _resolve_practice(access: Access, practice_id: uuid.UUID | None) -> Organization:
    practices = Organization.objects.filter(
        pk__in=access.practice_ids, kind=Organization.Kind.PRACTICE
    )
    if practice_id is not None:
        practice = practices.filter(public_id=practice_id).first()
        if practice is None:
            raise _invalid({"practice": "Choose one of your practices."})
        return practice
    found = list(practices[:2])
    if len(found) != 1:
        raise _invalid({"practice": "Required: you belong to more than one practice."})
    return found[0]


def _resolve_provider(
    access: Access, actor: User, practice: Organization, provider_id: uuid.UUID | None
) -> User:
    if permissions.can_be_referring_provider(access, practice):
        if provider_id is not None and provider_id != actor.public_id:
            raise _invalid({"provider": "A provider refers their own patients; leave this empty."})
        return actor
    if provider_id is None:
        raise _invalid({"provider": "Required: choose the provider this referral is for."})
    provider = (
        User.objects.filter(
            public_id=provider_id,
            is_active=True,
            memberships__organization=practice,
            memberships__role=Role.PROVIDER,
            memberships__is_active=True,
        )
        .distinct()
        .first()
    )
    if provider is None:
        raise _invalid({"provider": "Choose an active provider of your practice."})
    return provider


def _resolve_clinic(clinic_id: uuid.UUID | None) -> Organization:
    clinics = Organization.objects.filter(kind=Organization.Kind.CLINIC)
    if clinic_id is not None:
        clinic = clinics.filter(public_id=clinic_id).first()
        if clinic is None:
            raise _invalid({"clinic": "Unknown clinic."})
        return clinic
    found = list(clinics.order_by("pk")[:2])
    if len(found) != 1:
        raise _invalid({"clinic": "Required: choose the receiving clinic."})
    return found[0]


# --- create and edit -----------------------------------------------------------------------------


def referral_create(*, actor: User, data: Mapping[str, Any]) -> Referral:
    """Create a draft referral in the actor's practice.

    ``data`` uses the API's field names (DESIGN.md section 6), all optional for a draft:
    ``patient`` (dict), ``patient_id`` (an existing patient of the practice, e.g. a duplicate the
    practice confirmed), ``provider`` (public id; required from practice staff, the provider
    themself otherwise), ``practice`` / ``clinic`` (public ids, needed only when ambiguous) and
    the content fields. Unknown keys are refused.
    """
    _check_keys(data, CREATE_KEYS)

    def work() -> Referral:
        access = access_for(actor)
        if not access.practice_ids:
            raise _Denied(
                Forbidden("Only members of a referring practice can create referrals."),
                "referral.create",
                None,
            )
        practice = _resolve_practice(access, data.get("practice"))
        provider = _resolve_provider(access, actor, practice, data.get("provider"))
        clinic = _resolve_clinic(data.get("clinic"))
        now = timezone.now()
        if data.get("patient_id") is not None:
            patient = Patient.objects.filter(
                practice=practice, public_id=data["patient_id"]
            ).first()
            if patient is None:
                raise _invalid({"patient_id": "Unknown patient."})
        else:
            patient = Patient(practice=practice, created_by=actor)
        _apply_patient(patient, data.get("patient") or {})
        patient.save()
        referral = Referral(
            number=_allocate_number(now),
            practice=practice,
            clinic=clinic,
            patient=patient,
            provider=provider,
            created_by=actor,
            status=S.DRAFT,
        )
        _apply_content(referral, data)
        referral.save()
        if data.get("prior_trials"):
            _replace_trials(referral, data["prior_trials"])
        _record_event(referral=referral, kind=EventKind.CREATED, actor=actor, to_status=S.DRAFT)
        _audit(actor, "referral.created", referral)
        logger.info("referral.created", extra={"referral": str(referral.public_id)})
        return referral

    return _run_denying(actor, work)


def referral_update(*, actor: User, referral: Referral, data: Mapping[str, Any]) -> Referral:
    """Edit a referral while it is a draft or information was requested.

    Objects (``patient``, ``contraindications``, ``insurance``) merge key by key; lists
    (``prior_trials``, ``diagnosis_codes``, ``phq9_answers``) replace. ``provider`` may be
    changed by practice staff only. An edit by anyone but the provider withdraws the provider's
    sign-off, which covered the content as it was.
    """
    _check_keys(data, UPDATE_KEYS)

    def work() -> Referral:
        locked = _lock(referral)
        access = access_for(actor)
        if not permissions.can_view_referral(access, locked):
            raise _Denied(NotFound(), "referral.update", locked)
        parties = permissions.referral_parties(access, locked)
        if not parties & {permissions.REFERRER, permissions.PRACTICE_STAFF}:
            raise _Denied(
                Forbidden("Only the referring provider or their practice staff can edit this."),
                "referral.update",
                locked,
            )
        if not permissions.can_edit_referral(access, locked):
            raise _conflict(
                "A referral can be edited only while it is a draft or information was requested.",
                "not_editable",
                parties,
                locked,
            )
        changed: list[str] = []
        if "provider" in data and data["provider"] is not None:
            provider = _resolve_provider(access, actor, locked.practice, data["provider"])
            if provider.pk != locked.provider_id:
                locked.provider = provider
                changed.append("provider")
        patient_changes = _apply_patient(locked.patient, data.get("patient") or {})
        if patient_changes:
            locked.patient.save(update_fields=[*patient_changes, "updated_at"])
            changed.append("patient")
        changed.extend(_apply_content(locked, data))
        if "prior_trials" in data:
            _replace_trials(locked, data["prior_trials"] or [])
            changed.append("prior_trials")
        if not changed:
            return locked
        update_fields = [name for name in changed if name not in {"patient", "prior_trials"}]
        if permissions.REFERRER not in parties and locked.provider_signed_off_at is not None:
            locked.provider_signed_off_at = None
            update_fields.append("provider_signed_off_at")
        locked.save(update_fields=[*update_fields, "updated_at"])
        _record_event(referral=locked, kind=EventKind.UPDATED, actor=actor)
        _audit(actor, "referral.updated", locked, fields=",".join(sorted(changed)))
        if "suicidal_intent" in changed and locked.suicidal_intent and locked.status != S.DRAFT:
            _alert_urgent(locked, actor)
        return locked

    return _run_denying(actor, work)


# --- the lifecycle -------------------------------------------------------------------------------


def _conflict(detail: str, code: str, parties: frozenset[str], referral: Referral) -> Conflict:
    return Conflict(
        detail,
        code=code,
        extra={
            "status": referral.status,
            "allowed_actions": transitions.allowed_actions(parties, referral, timezone.now()),
        },
    )


Apply = Callable[[Referral, datetime], list[str]]
Validate = Callable[[Referral, datetime], None]


def _perform(
    *,
    actor: User,
    referral: Referral,
    action: str,
    note: str = "",
    validate: Validate | None = None,
    apply: Apply | None = None,
) -> Referral:
    """The one path every lifecycle action takes (see the module docstring)."""

    def work() -> Referral:
        locked = _lock(referral)
        access = access_for(actor)
        audit_action = f"referral.{action.replace('-', '_')}"
        if not permissions.can_view_referral(access, locked):
            raise _Denied(NotFound(), audit_action, locked)
        parties = permissions.referral_parties(access, locked)
        if not parties & transitions.parties_for_action(action):
            raise _Denied(
                Forbidden("You may not take this action on this referral."),
                audit_action,
                locked,
            )
        now = timezone.now()
        transition = transitions.transition_for(action, locked.status)
        if transition is None or not parties & transition.parties:
            raise _conflict(
                f"A referral that is {locked.get_status_display().lower()} cannot be "
                f"given the action {action!r}.",
                "invalid_transition",
                parties,
                locked,
            )
        if transition.guard is not None:
            refusal = transition.guard(parties, locked, now)
            if refusal is not None:
                raise _conflict(refusal[1], refusal[0], parties, locked)
        if validate is not None:
            validate(locked, now)
        from_status = locked.status
        locked.status = transition.target
        changed = apply(locked, now) if apply is not None else []
        locked.save(update_fields=["status", *changed, "updated_at"])
        _record_event(
            referral=locked,
            kind=transition.event,
            actor=actor,
            from_status=from_status,
            to_status=locked.status,
            note=note,
        )
        _audit(
            actor,
            f"referral.{transition.event}",
            locked,
            from_status=from_status,
            to_status=locked.status,
        )
        urgent_alert = transition.event == EventKind.SUBMITTED and locked.suicidal_intent
        if urgent_alert:
            # The alert replaces the plain "submitted" notification for the same people.
            _alert_urgent(locked, actor)
        else:
            _notify_event(locked, transition.event, actor)
        logger.info(
            "referral.transition",
            extra={"referral": str(locked.public_id), "action": action, "to": locked.status},
        )
        return locked

    return _run_denying(actor, work)


def _start_triage_clock(referral: Referral, now: datetime) -> list[str]:
    days = clinic_settings_for(referral.clinic).triage_business_days
    referral.triage_due_at = add_business_days(now, days)
    referral.overdue_flagged_at = None
    return ["triage_due_at", "overdue_flagged_at"]


def submission_problems(referral: Referral) -> dict[str, str]:
    """What a referral still lacks before it can be submitted: ``{"field.path": message}``.

    Exposed for the wizard's review step. Paths use the API's field names, list positions are
    0-based (``prior_trials.0.drug``, ``phq9_answers.8`` is item 9).
    """
    problems: dict[str, str] = {}
    patient = referral.patient
    for key in ("given_name", "family_name", "birth_date", "sex", "phone"):
        if not getattr(patient, key):
            problems[f"patient.{key}"] = REQUIRED
    if not referral.reason.strip():
        problems["reason"] = REQUIRED
    if not referral.diagnosis_codes:
        problems["diagnosis_codes"] = "At least one diagnosis code (F31.x, F32.x, F33.x)."
    if referral.episode_months is None:
        problems["episode_months"] = REQUIRED
    trials = list(referral.prior_trials.all())
    if not trials:
        problems["prior_trials"] = "Add at least one prior antidepressant trial."
    for position, trial in enumerate(trials):
        for key in ("drug", "max_daily_dose_mg", "weeks_at_dose", "adherence", "outcome"):
            if getattr(trial, key) in (None, ""):
                problems[f"prior_trials.{position}.{key}"] = REQUIRED
    for key in ("current_medications", "allergies"):
        if not getattr(referral, key).strip():
            problems[key] = 'Required (write "none" if there are none).'
    for key in ("office_bp_systolic", "office_bp_diastolic", "office_heart_rate"):
        if getattr(referral, key) is None:
            problems[key] = REQUIRED
    answers = list(referral.phq9_answers or [])
    answers += [None] * (PHQ9_ITEMS - len(answers))
    for index, answer in enumerate(answers[:PHQ9_ITEMS]):
        if answer is None:
            problems[f"phq9_answers.{index}"] = f"Item {index + 1} is required."
    contraindications = referral.contraindications or {}
    for key in CONTRAINDICATION_KEYS:
        if not isinstance(contraindications.get(key), bool):
            problems[f"contraindications.{key}"] = "Answer yes or no."
    if not (referral.insurance or {}).get("payer"):
        problems["insurance.payer"] = 'Required (write "self-pay" if uninsured).'
    if not referral.consent_attested:
        problems["consent_attested"] = "The patient's consent to the referral must be attested."
    return problems


def _require_complete(referral: Referral, now: datetime) -> None:
    problems = submission_problems(referral)
    if problems:
        raise ServiceError(
            "The referral is incomplete; see the fields.",
            code="incomplete",
            extra={"fields": problems},
        )


def referral_sign_off(*, actor: User, referral: Referral) -> Referral:
    """The provider approves a draft that practice staff entered on their behalf."""

    def apply(locked: Referral, now: datetime) -> list[str]:
        locked.provider_signed_off_at = now
        return ["provider_signed_off_at"]

    return _perform(actor=actor, referral=referral, action="sign-off", apply=apply)


def referral_submit(*, actor: User, referral: Referral, answer: str | None = None) -> Referral:
    """Submit a complete draft (-> submitted), or answer an information request (-> in_review).

    The provider may submit; practice staff only once the provider has signed off. Submission
    starts the triage clock. ``answer`` is required when information was requested, and the
    answer restarts the clock: the clinic has had the referral back for no time at all.
    """
    answer_text = (answer or "").strip()

    def validate(locked: Referral, now: datetime) -> None:
        _require_complete(locked, now)
        if locked.status == S.INFO_REQUESTED and not answer_text:
            raise ServiceError(
                "Answer the clinic's question to resubmit.",
                code="incomplete",
                extra={"fields": {"answer": REQUIRED}},
            )
        if locked.status == S.DRAFT and answer_text:
            raise _invalid({"answer": "The clinic has not asked a question to answer."})

    def apply(locked: Referral, now: datetime) -> list[str]:
        changed = _start_triage_clock(locked, now)
        if locked.submitted_at is None:
            locked.submitted_at = now
            changed.append("submitted_at")
        if locked.provider_id == actor.pk and locked.provider_signed_off_at is None:
            # The provider's own submission is their sign-off.
            locked.provider_signed_off_at = now
            changed.append("provider_signed_off_at")
        return changed

    return _perform(
        actor=actor,
        referral=referral,
        action="submit",
        note=answer_text,
        validate=validate,
        apply=apply,
    )


def referral_review(*, actor: User, referral: Referral) -> Referral:
    """A coordinator picks the referral up for triage."""
    return _perform(actor=actor, referral=referral, action="review")


def _require_text(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise _invalid({field: REQUIRED})
    return text


def referral_request_info(*, actor: User, referral: Referral, question: str) -> Referral:
    """A coordinator asks the referrer for more information (never after acceptance)."""
    text = _require_text(question, "question")
    return _perform(actor=actor, referral=referral, action="request-info", note=text)


def referral_accept(*, actor: User, referral: Referral) -> Referral:
    return _perform(actor=actor, referral=referral, action="accept")


def referral_decline(*, actor: User, referral: Referral, reason: str, advice: str = "") -> Referral:
    """Decline with a reason, and optionally advice for the referrer (e.g. another service)."""
    reason_text = _require_text(reason, "reason")
    advice_text = (advice or "").strip()

    def apply(locked: Referral, now: datetime) -> list[str]:
        locked.decline_reason = reason_text
        locked.decline_advice = advice_text
        return ["decline_reason", "decline_advice"]

    return _perform(actor=actor, referral=referral, action="decline", note=reason_text, apply=apply)


def referral_schedule(*, actor: User, referral: Referral, consult_at: datetime) -> Referral:
    """Set (or move) the consult; it must be timezone-aware and in the future."""
    if not isinstance(consult_at, datetime) or timezone.is_naive(consult_at):
        raise _invalid({"consult_at": "A date and time with a time zone is required."})

    def validate(locked: Referral, now: datetime) -> None:
        if consult_at <= now:
            raise _invalid({"consult_at": "The consult must be in the future."})

    def apply(locked: Referral, now: datetime) -> list[str]:
        locked.consult_at = consult_at
        return ["consult_at"]

    return _perform(
        actor=actor, referral=referral, action="schedule", validate=validate, apply=apply
    )


def referral_record_no_show(*, actor: User, referral: Referral) -> Referral:
    """The patient missed the consult: back to accepted, waiting for a new consult time."""

    def apply(locked: Referral, now: datetime) -> list[str]:
        locked.consult_at = None
        return ["consult_at"]

    return _perform(actor=actor, referral=referral, action="no-show", apply=apply)


def referral_start_treatment(*, actor: User, referral: Referral) -> Referral:
    """A clinician records that treatment started (at the first infusion)."""
    return _perform(actor=actor, referral=referral, action="start-treatment")


def referral_complete(*, actor: User, referral: Referral) -> Referral:
    """A clinician completes treatment; the reports app calls this when the final report is
    signed (the actor being the signing clinician)."""
    return _perform(actor=actor, referral=referral, action="complete")


def referral_acknowledge(*, actor: User, referral: Referral) -> Referral:
    """The referring provider acknowledges the outcome: the loop is closed. The reports app may
    call this when the provider acknowledges the final report."""
    return _perform(actor=actor, referral=referral, action="acknowledge")


def referral_cancel(*, actor: User, referral: Referral, reason: str) -> Referral:
    """The referrer's side withdraws the referral, any time before completion, with a reason."""
    reason_text = _require_text(reason, "reason")

    def apply(locked: Referral, now: datetime) -> list[str]:
        locked.cancel_reason = reason_text
        return ["cancel_reason"]

    return _perform(actor=actor, referral=referral, action="cancel", note=reason_text, apply=apply)


def referral_set_legal_hold(*, actor: User, referral: Referral, legal_hold: bool) -> Referral:
    """A clinic admin places or lifts a legal hold (kept by messaging retention)."""

    def work() -> Referral:
        locked = _lock(referral)
        access = access_for(actor)
        if not permissions.can_view_referral(access, locked):
            raise _Denied(NotFound(), "referral.legal_hold", locked)
        if permissions.CLINIC_ADMIN not in permissions.referral_parties(access, locked):
            raise _Denied(
                Forbidden("Only a clinic admin can change a legal hold."),
                "referral.legal_hold",
                locked,
            )
        if locked.legal_hold != legal_hold:
            locked.legal_hold = legal_hold
            locked.save(update_fields=["legal_hold", "updated_at"])
            _audit(actor, "referral.legal_hold", locked, legal_hold=legal_hold)
        return locked

    return _run_denying(actor, work)


# --- service levels ------------------------------------------------------------------------------


def referral_flag_overdue(*, now: datetime | None = None) -> int:
    """Flag every referral whose triage is overdue to the clinic's coordinators, once each.

    Idempotent: a flagged referral carries ``overdue_flagged_at`` and is skipped afterwards (the
    clock, and the flag, restart when the referrer answers an information request). Returns how
    many referrals were flagged.
    """
    moment = now or timezone.now()
    candidates = Referral.objects.filter(
        status__in=permissions.TRIAGE_STATES,
        triage_due_at__lt=moment,
        overdue_flagged_at__isnull=True,
    ).values_list("pk", flat=True)
    flagged = 0
    for pk in list(candidates[:500]):
        with transaction.atomic():
            locked = (
                Referral.objects.select_for_update(of=("self",))
                .select_related("clinic", "practice", "provider", "created_by")
                .filter(pk=pk, overdue_flagged_at__isnull=True)
                .first()
            )
            if locked is None or not is_overdue(locked, moment):
                continue
            locked.overdue_flagged_at = moment
            locked.save(update_fields=["overdue_flagged_at", "updated_at"])
            _record_event(referral=locked, kind=EventKind.OVERDUE, actor=None)
            _audit(None, "referral.overdue_flagged", locked)
            _notify_event(locked, EventKind.OVERDUE, None)
            flagged += 1
    if flagged:
        logger.info("referral.overdue_flagged", extra={"count": flagged})
    return flagged


# --- attachments ---------------------------------------------------------------------------------

ATTACHMENT_PURPOSE: Final = "referral-attachment"


def _upload_allowed(actor: User, referral: Referral) -> Referral:
    """Lock and check the referral for an upload; raises ``_Denied`` or ``Conflict``."""
    locked = _lock(referral)
    access = access_for(actor)
    if not permissions.can_view_referral(access, locked):
        raise _Denied(NotFound(), "referral.attachment_upload", locked)
    parties = permissions.referral_parties(access, locked)
    if not parties & {permissions.REFERRER, permissions.PRACTICE_STAFF}:
        raise _Denied(
            Forbidden("Only the referring provider or their practice staff can add records."),
            "referral.attachment_upload",
            locked,
        )
    if not permissions.can_upload_attachment(access, locked):
        raise _conflict(
            "Records can be added only while the referral is a draft or information was "
            "requested; send later documents in the referral's messages.",
            "not_editable",
            parties,
            locked,
        )
    return locked


def attachment_upload(*, actor: User, referral: Referral, uploaded_file: IO[bytes]) -> Attachment:
    """Validate (type by content, size, malware scan), store encrypted, record and audit.

    Allowed to the referrer and their practice staff while the referral is editable (a draft,
    or while the clinic waits for information). The access check runs before the file is even
    looked at; ``UploadRejected`` (400/413/415/503) leaves nothing behind.
    """
    _run_denying(actor, lambda: _upload_allowed(actor, referral))
    validated = validate_upload(uploaded_file)
    created: list[Attachment] = []

    def work() -> Referral:
        locked = _upload_allowed(actor, referral)
        attachment = Attachment(
            referral=locked,
            content_type=validated.content_type,
            original_name=validated.original_name_sanitised,
            uploaded_by=actor,
        )
        # The file is bound to the attachment row that owns it; inside this transaction its
        # registry row rolls back with the attachment if anything below fails.
        stored = store_encrypted_file(
            uploaded_file, purpose=ATTACHMENT_PURPOSE, owner_id=str(attachment.public_id)
        )
        attachment.stored_name = stored.name
        attachment.size = stored.size
        attachment.sha256 = stored.sha256
        attachment.save(force_insert=True)
        _record_event(referral=locked, kind=EventKind.ATTACHMENT_ADDED, actor=actor)
        audit_record(
            actor=actor,
            action="referral.attachment_uploaded",
            object_type="attachment",
            object_id=attachment.public_id,
            details={
                "referral": str(locked.public_id),
                "size": attachment.size,
                "content_type": attachment.content_type,
            },
        )
        _notify_event(locked, EventKind.ATTACHMENT_ADDED, actor)
        created.append(attachment)
        return locked

    _run_denying(actor, work)
    return created[0]
