"""Forms of the referral pages: the wizard's steps and the lifecycle actions.

The forms check shape and ranges with the same rules as the API's input serializers and turn what
was typed into the services' input (the API's field names, DESIGN.md section 6). Every business
rule (who may do what, completeness at submission, urgency on suicidal intent) stays in the
services; the views put the services' refusals back onto these forms.

Questionnaire wording is data, not code (CLINICAL.md): the PHQ-9 items and answer labels are read
from ``referrals/fixtures/phq9_items.json``.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from django import forms
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.forms import formset_factory
from django.forms.formsets import BaseFormSet
from django.utils import timezone

from portal.accounts.models import Organization, User
from referrals.apis import DIAGNOSIS_CODE_PATTERN, OLDEST_BIRTH_DATE, PHONE_PATTERN
from referrals.models import (
    CONTRAINDICATION_KEYS,
    Adherence,
    PriorTrial,
    Referral,
    Sex,
    TrialOutcome,
)
from referrals.screening import PHQ9_ITEMS

PHQ9_FIXTURE: Final = Path(__file__).resolve().parent / "fixtures" / "phq9_items.json"
MAX_TRIALS: Final = 20
MAX_DIAGNOSIS_CODES: Final = 10
YES: Final = "yes"
NO: Final = "no"
YES_NO: Final = [(YES, "Yes"), (NO, "No")]
NOT_RECORDED: Final = ("", "Not recorded yet")

#: The contraindication checklist as the referrer reads it (CLINICAL.md, "Screen on referral").
CONTRAINDICATION_LABELS: Final[dict[str, str]] = {
    "psychosis": "Psychotic disorder or psychotic features",
    "substance_use_disorder": "Active substance use disorder or ketamine misuse",
    "uncontrolled_hypertension": "Uncontrolled hypertension",
    "vascular_aneurysm_or_avm": (
        "Aneurysm, arteriovenous malformation or intracerebral haemorrhage history"
    ),
    "pregnancy": "Pregnancy or breastfeeding",
    "ketamine_hypersensitivity": "Ketamine hypersensitivity",
}


@dataclass(frozen=True)
class Questionnaire:
    title: str
    stem: str
    options: tuple[tuple[int, str], ...]
    items: tuple[str, ...]

    def option_label(self, value: int) -> str:
        return dict(self.options).get(value, str(value))


@functools.cache
def phq9_questionnaire() -> Questionnaire:
    """The PHQ-9 wording from its data file (read once; replaceable where licensing requires)."""
    raw = json.loads(PHQ9_FIXTURE.read_text(encoding="utf-8"))
    items = tuple(str(item) for item in raw["items"])
    options = tuple((int(option["value"]), str(option["label"])) for option in raw["options"])
    if len(items) != PHQ9_ITEMS or [value for value, _ in options] != [0, 1, 2, 3]:
        raise ImproperlyConfigured(f"{PHQ9_FIXTURE} must hold 9 items and the answers 0-3.")
    return Questionnaire(
        title=str(raw["title"]), stem=str(raw["stem"]), options=options, items=items
    )


def _yes_no(value: object) -> str | None:
    if value is True:
        return YES
    if value is False:
        return NO
    return None


def _as_bool(value: str) -> bool | None:
    return {YES: True, NO: False}.get(value)


class TextArea(forms.Textarea):
    def __init__(self, rows: int = 3) -> None:
        super().__init__(attrs={"rows": rows})


# --- step 1: the patient ---------------------------------------------------------------------


class PatientForm(forms.Form):
    """The patient's identity and contact data, the insurance, and (for practice staff) the
    provider the referral is entered for. Every field may stay empty in a draft."""

    given_name = forms.CharField(max_length=100, required=False, label="Given name")
    family_name = forms.CharField(max_length=100, required=False, label="Family name")
    birth_date = forms.DateField(
        required=False,
        label="Date of birth",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    sex = forms.ChoiceField(choices=[NOT_RECORDED, *Sex.choices], required=False, label="Sex")
    phone = forms.CharField(
        max_length=32,
        required=False,
        label="Phone",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    email = forms.EmailField(
        max_length=254,
        required=False,
        label="Email (optional)",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    payer = forms.CharField(
        max_length=200,
        required=False,
        label="Insurance payer",
        help_text='Write "self-pay" if the patient is uninsured.',
    )
    member_id = forms.CharField(max_length=100, required=False, label="Member ID (optional)")
    group_number = forms.CharField(max_length=100, required=False, label="Group number (optional)")

    def __init__(
        self,
        *args: Any,
        practices: Sequence[Organization] = (),
        providers: Sequence[User] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if len(practices) > 1:
            self.fields["practice"] = forms.ChoiceField(
                label="Practice",
                choices=[
                    ("", "Choose a practice"),
                    *((str(p.public_id), p.name) for p in practices),
                ],
            )
            self.order_fields(["practice"])
        if providers:
            self.fields["provider"] = forms.ChoiceField(
                label="Referring provider",
                help_text="You enter this referral on their behalf; they sign it off.",
                choices=[
                    ("", "Choose a provider"),
                    *((str(user.public_id), user.get_full_name()) for user in providers),
                ],
            )
            self.order_fields(["practice", "provider"])

    def clean_birth_date(self) -> datetime.date | None:
        value: datetime.date | None = self.cleaned_data.get("birth_date")
        if value is not None and not OLDEST_BIRTH_DATE <= value <= timezone.localdate():
            raise ValidationError("Enter a date between 1 January 1900 and today.")
        return value

    def clean_phone(self) -> str:
        value: str = self.cleaned_data.get("phone", "").strip()
        if value and not PHONE_PATTERN.match(value):
            raise ValidationError("Use digits, spaces and + ( ) - . only (7 to 32 characters).")
        return value

    def to_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        result: dict[str, Any] = {
            "patient": {
                "given_name": data["given_name"].strip(),
                "family_name": data["family_name"].strip(),
                "birth_date": data["birth_date"],
                "sex": data["sex"],
                "phone": data["phone"],
                "email": data["email"],
            },
            "insurance": {
                "payer": data["payer"].strip(),
                "member_id": data["member_id"].strip(),
                "group_number": data["group_number"].strip(),
            },
        }
        if data.get("provider"):
            result["provider"] = uuid.UUID(data["provider"])
        return result

    def practice_id(self) -> uuid.UUID | None:
        value = self.cleaned_data.get("practice")
        return uuid.UUID(value) if value else None

    @staticmethod
    def initial_for(referral: Referral) -> dict[str, Any]:
        patient = referral.patient
        insurance = referral.insurance or {}
        return {
            "given_name": patient.given_name,
            "family_name": patient.family_name,
            "birth_date": patient.birth_date or None,
            "sex": patient.sex,
            "phone": patient.phone,
            "email": patient.email,
            "payer": insurance.get("payer", ""),
            "member_id": insurance.get("member_id", ""),
            "group_number": insurance.get("group_number", ""),
            "provider": str(referral.provider.public_id),
        }


NEW_PATIENT: Final = "new"


class DuplicateChoiceForm(forms.Form):
    """ "Is this the same patient?": one of the practice's patients with this name and birth
    date, or a new patient record."""

    same_patient = forms.ChoiceField(
        label="Is this the same patient?", widget=forms.RadioSelect, required=True
    )

    def __init__(self, *args: Any, choices: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["same_patient"]
        if not isinstance(field, forms.ChoiceField):  # narrows the type for mypy
            raise TypeError("same_patient must be a choice field")
        field.choices = [*choices, (NEW_PATIENT, "No, this is a different patient")]
        field.error_messages["required"] = "Say whether this is the same patient."

    def patient_id(self) -> uuid.UUID | None:
        value = self.cleaned_data["same_patient"]
        return None if value == NEW_PATIENT else uuid.UUID(value)


# --- step 2: history and prior trials --------------------------------------------------------


class HistoryForm(forms.Form):
    reason = forms.CharField(
        max_length=5000, required=False, label="Reason for referral", widget=TextArea(4)
    )
    diagnosis_codes = forms.CharField(
        max_length=120,
        required=False,
        label="Diagnosis codes (ICD-10)",
        help_text="F31.x, F32.x or F33.x; separate several with commas, e.g. F33.2, F31.4.",
    )
    episode_months = forms.IntegerField(
        min_value=0, max_value=600, required=False, label="Length of the current episode (months)"
    )
    current_medications = forms.CharField(
        max_length=2000,
        required=False,
        label="Current medications",
        help_text='Write "none" if there are none.',
        widget=TextArea(),
    )
    allergies = forms.CharField(
        max_length=2000,
        required=False,
        label="Allergies",
        help_text='Write "none known" if there are none.',
        widget=TextArea(2),
    )
    office_bp_systolic = forms.IntegerField(
        min_value=50, max_value=300, required=False, label="Systolic (mmHg)"
    )
    office_bp_diastolic = forms.IntegerField(
        min_value=20, max_value=200, required=False, label="Diastolic (mmHg)"
    )
    office_heart_rate = forms.IntegerField(
        min_value=20, max_value=250, required=False, label="Heart rate (beats per minute)"
    )

    def clean_diagnosis_codes(self) -> list[str]:
        text: str = self.cleaned_data.get("diagnosis_codes", "")
        codes: list[str] = []
        for part in re.split(r"[,;\s]+", text):
            code = part.strip().upper()
            if not code:
                continue
            if not DIAGNOSIS_CODE_PATTERN.match(code):
                raise ValidationError(
                    f"{part} is not an ICD-10 depressive episode code (F31.x, F32.x, F33.x)."
                )
            if code not in codes:
                codes.append(code)
        if len(codes) > MAX_DIAGNOSIS_CODES:
            raise ValidationError(f"Enter at most {MAX_DIAGNOSIS_CODES} codes.")
        return codes

    def to_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "reason": data["reason"].strip(),
            "diagnosis_codes": data["diagnosis_codes"],
            "episode_months": data["episode_months"],
            "current_medications": data["current_medications"].strip(),
            "allergies": data["allergies"].strip(),
            "office_bp_systolic": data["office_bp_systolic"],
            "office_bp_diastolic": data["office_bp_diastolic"],
            "office_heart_rate": data["office_heart_rate"],
        }

    @staticmethod
    def initial_for(referral: Referral) -> dict[str, Any]:
        return {
            "reason": referral.reason,
            "diagnosis_codes": ", ".join(referral.diagnosis_codes or []),
            "episode_months": referral.episode_months,
            "current_medications": referral.current_medications,
            "allergies": referral.allergies,
            "office_bp_systolic": referral.office_bp_systolic,
            "office_bp_diastolic": referral.office_bp_diastolic,
            "office_heart_rate": referral.office_heart_rate,
        }


def _plain_number(value: Decimal | None) -> Decimal | None:
    """200.00 shows as 200 in the form, 7.5 stays 7.5."""
    if value is None or value != value.to_integral_value():
        return value
    return value.quantize(Decimal(1))


TRIAL_KEYS: Final = ("drug", "max_daily_dose_mg", "weeks_at_dose", "adherence", "outcome")


class TrialForm(forms.Form):
    """One prior antidepressant trial; a row left entirely empty is dropped."""

    drug = forms.CharField(max_length=200, required=False, label="Drug")
    max_daily_dose_mg = forms.DecimalField(
        max_digits=8, decimal_places=2, min_value=0, required=False, label="Highest daily dose (mg)"
    )
    weeks_at_dose = forms.DecimalField(
        max_digits=5,
        decimal_places=1,
        min_value=0,
        max_value=520,
        required=False,
        label="Weeks at that dose",
    )
    adherence = forms.ChoiceField(
        choices=[NOT_RECORDED, *Adherence.choices], required=False, label="Adherence"
    )
    outcome = forms.ChoiceField(
        choices=[NOT_RECORDED, *TrialOutcome.choices], required=False, label="Outcome"
    )

    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return all(data.get(key) in (None, "") for key in TRIAL_KEYS)

    def to_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "drug": data["drug"].strip(),
            "max_daily_dose_mg": data["max_daily_dose_mg"],
            "weeks_at_dose": data["weeks_at_dose"],
            "adherence": data["adherence"],
            "outcome": data["outcome"],
        }

    @staticmethod
    def initial_for(trial: PriorTrial) -> dict[str, Any]:
        return {
            "drug": trial.drug,
            "max_daily_dose_mg": _plain_number(trial.max_daily_dose_mg),
            "weeks_at_dose": _plain_number(trial.weeks_at_dose),
            "adherence": trial.adherence,
            "outcome": trial.outcome,
        }


TRIAL_PREFIX: Final = "trials"


def trial_formset(
    data: Mapping[str, Any] | None, initial: Sequence[Mapping[str, Any]], *, extra: int
) -> BaseFormSet[TrialForm]:
    """The repeating block of prior trials: one row per saved trial, plus ``extra`` blank rows
    (a new draft starts with one; "add another trial" asks for one more)."""
    formset_class = formset_factory(
        TrialForm,
        extra=extra,
        max_num=MAX_TRIALS,
        validate_max=True,
        absolute_max=MAX_TRIALS + 1,
    )
    return formset_class(data, initial=list(initial) or None, prefix=TRIAL_PREFIX)


# --- step 3: screening -----------------------------------------------------------------------


def phq9_field_name(index: int) -> str:
    return f"phq9_{index}"


def contraindication_field_name(key: str) -> str:
    return f"contraindication_{key}"


class ScreeningForm(forms.Form):
    """PHQ-9 item answers, the contraindication checklist, the suicidality question and urgency.

    Drafts may leave PHQ-9 items and checklist questions unanswered; the suicidality question
    must always be answered when this step is saved, because a yes changes what happens next.
    """

    suicidal_intent = forms.ChoiceField(
        label="Does the patient have active suicidal intent (a plan or intent to act now)?",
        choices=YES_NO,
        widget=forms.RadioSelect,
        error_messages={"required": "Answer whether the patient has active suicidal intent."},
    )
    urgent = forms.BooleanField(
        required=False,
        label="Urgent: the clinic should contact the patient the same day",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The labels are questions; a colon after a question mark reads wrong.
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        questionnaire = phq9_questionnaire()
        choices = [(str(value), label) for value, label in questionnaire.options]
        phq9_fields: dict[str, forms.Field] = {}
        for index, wording in enumerate(questionnaire.items):
            phq9_fields[phq9_field_name(index)] = forms.TypedChoiceField(
                label=f"{index + 1}. {wording}",
                choices=choices,
                coerce=int,
                empty_value=None,
                required=False,
                widget=forms.RadioSelect,
            )
        checklist: dict[str, forms.Field] = {
            contraindication_field_name(key): forms.ChoiceField(
                label=CONTRAINDICATION_LABELS[key],
                choices=YES_NO,
                required=False,
                widget=forms.RadioSelect,
            )
            for key in CONTRAINDICATION_KEYS
        }
        # PHQ-9 first, then the checklist, then the safety question and urgency.
        self.fields = {**phq9_fields, **checklist, **self.fields}

    def phq9_fields(self) -> list[forms.BoundField]:
        return [self[phq9_field_name(index)] for index in range(PHQ9_ITEMS)]

    def contraindication_fields(self) -> list[forms.BoundField]:
        return [self[contraindication_field_name(key)] for key in CONTRAINDICATION_KEYS]

    def to_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        answers = [data[phq9_field_name(index)] for index in range(PHQ9_ITEMS)]
        return {
            # A questionnaire not started at all is stored as no answers, not nine blanks.
            "phq9_answers": answers if any(a is not None for a in answers) else [],
            "contraindications": {
                key: _as_bool(data[contraindication_field_name(key)])
                for key in CONTRAINDICATION_KEYS
            },
            "suicidal_intent": data["suicidal_intent"] == YES,
            "urgent": data["urgent"],
        }

    @staticmethod
    def initial_for(referral: Referral) -> dict[str, Any]:
        answers = list(referral.phq9_answers or [])
        contraindications = referral.contraindications or {}
        initial: dict[str, Any] = {"urgent": referral.urgent}
        for index in range(PHQ9_ITEMS):
            value = answers[index] if index < len(answers) else None
            initial[phq9_field_name(index)] = None if value is None else str(value)
        for key in CONTRAINDICATION_KEYS:
            initial[contraindication_field_name(key)] = _yes_no(contraindications.get(key))
        # The model cannot tell "no" from "not asked yet": "no" is shown as answered only once
        # this step has been saved (it always saves answers or the checklist with it).
        screened = bool(answers) or bool(contraindications)
        initial["suicidal_intent"] = YES if referral.suicidal_intent else NO if screened else None
        return initial


# --- step 4: attachments; step 5: review -----------------------------------------------------


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label="Add a record",
        help_text="A PDF, PNG, JPEG or plain-text file of up to 25 MB (for example a psychiatric "
        "evaluation or medication history).",
        allow_empty_file=False,
        error_messages={"required": "Choose a file to upload."},
    )


class ReviewForm(forms.Form):
    consent_attested = forms.BooleanField(
        required=False,
        label="I attest that the patient has consented to this referral and to sharing these "
        "records with the clinic.",
    )

    def __init__(self, *args: Any, question: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if question is not None:
            self.fields["answer"] = forms.CharField(
                max_length=5000,
                required=False,
                label="Your answer to the clinic's question",
                widget=TextArea(4),
            )


# --- lifecycle actions -----------------------------------------------------------------------


class NoInputForm(forms.Form):
    """An action that needs nothing but the button."""

    def to_arguments(self) -> dict[str, Any]:
        return {}


class QuestionForm(NoInputForm):
    question = forms.CharField(
        max_length=5000,
        label="Question for the referrer",
        widget=TextArea(),
        error_messages={"required": "Write the question for the referrer."},
    )

    def to_arguments(self) -> dict[str, Any]:
        return {"question": self.cleaned_data["question"]}


class AnswerForm(NoInputForm):
    answer = forms.CharField(
        max_length=5000,
        label="Your answer",
        widget=TextArea(4),
        error_messages={"required": "Write your answer to the clinic's question."},
    )

    def to_arguments(self) -> dict[str, Any]:
        return {"answer": self.cleaned_data["answer"]}


class DeclineForm(NoInputForm):
    reason = forms.CharField(
        max_length=5000,
        label="Reason for declining",
        widget=TextArea(),
        error_messages={"required": "Give the reason for declining."},
    )
    advice = forms.CharField(
        max_length=5000,
        required=False,
        label="Advice for the referrer (optional)",
        help_text="For example another service that may suit the patient.",
        widget=TextArea(),
    )

    def to_arguments(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"], "advice": self.cleaned_data["advice"]}


class ScheduleForm(NoInputForm):
    consult_at = forms.DateTimeField(
        label="Consult date and time",
        input_formats=["%Y-%m-%dT%H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={
            "required": "Choose the consult date and time.",
            "invalid": "Enter a date and time.",
        },
    )

    def to_arguments(self) -> dict[str, Any]:
        return {"consult_at": self.cleaned_data["consult_at"]}


class CancelForm(NoInputForm):
    reason = forms.CharField(
        max_length=5000,
        label="Reason for cancelling",
        widget=TextArea(),
        error_messages={"required": "Give the reason for cancelling."},
    )

    def to_arguments(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"]}


#: The form of each lifecycle action (the detail page and the worklist post these).
ACTION_FORMS: Final[Mapping[str, type[NoInputForm]]] = {
    "sign-off": NoInputForm,
    "submit": AnswerForm,
    "review": NoInputForm,
    "request-info": QuestionForm,
    "accept": NoInputForm,
    "decline": DeclineForm,
    "schedule": ScheduleForm,
    "no-show": NoInputForm,
    "start-treatment": NoInputForm,
    "complete": NoInputForm,
    "acknowledge": NoInputForm,
    "cancel": CancelForm,
}


class ReferralFilterForm(forms.Form):
    """The list's filters (GET): nothing here is PHI (the search is on the referral number)."""

    status = forms.ChoiceField(required=False, label="Status")
    urgent = forms.BooleanField(required=False, label="Urgent only")
    overdue = forms.BooleanField(required=False, label="Overdue only")
    q = forms.CharField(
        max_length=20,
        required=False,
        label="Referral number",
        help_text="All or part of it, e.g. 00042.",
        widget=forms.TextInput(attrs={"type": "search"}),
    )

    def __init__(self, *args: Any, statuses: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        status = self.fields["status"]
        if not isinstance(status, forms.ChoiceField):  # narrows the type for mypy
            raise TypeError("status must be a choice field")
        status.choices = [("", "Any status"), *statuses]
