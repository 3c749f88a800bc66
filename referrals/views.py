"""Portal pages for referrals (Django templates; htmx-free forms that work without JavaScript).

Practices: the referral wizard (patient, history and prior trials, screening, attachments, review
and submit), which saves the draft at every step and resumes where the referral is still
incomplete; the list of their referrals with filters; the detail page with the timeline, the
screening summary, attachments, the referral's conversation and the actions allowed now.
The clinic: the triage worklist (urgent first, then by due time) with the triage actions.

Every page calls the same selectors and services as the API. What a service refuses comes back
as a form error or a message on the page with the service's status code (400, 403, 409, 413,
415), never a server error; a referral the user may not see is a 404, as in the API. State
changes are POST only (CSRF-protected); the pages contain no inline script or style (strict CSP).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.forms.formsets import BaseFormSet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.accounts.models import Organization, User
from portal.accounts.selectors import user_organizations
from portal.api.errors import Forbidden, NotFound, ServiceError
from portal.audit.services import audit_denied
from portal.core.downloads import file_download_response
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from referrals import permissions, services, transitions
from referrals.forms import (
    ACTION_FORMS,
    CONTRAINDICATION_LABELS,
    MAX_TRIALS,
    TRIAL_PREFIX,
    AttachmentForm,
    DuplicateChoiceForm,
    HistoryForm,
    NoInputForm,
    PatientForm,
    ReferralFilterForm,
    ReviewForm,
    ScreeningForm,
    TrialForm,
    contraindication_field_name,
    phq9_field_name,
    phq9_questionnaire,
    trial_formset,
)
from referrals.models import (
    CONTRAINDICATION_KEYS,
    Attachment,
    Referral,
    ReferralEvent,
    ReferralStatus,
)
from referrals.permissions import Access, access_for
from referrals.selectors import (
    ReferralDetail,
    attachment_list_for_user,
    attachment_open_for_user,
    patient_duplicates_for_user,
    practice_providers_for_user,
    referral_detail_for_user,
    referral_events_for_user,
    referral_get_for_user,
    referral_list_for_user,
    referral_worklist_for_user,
)
from referrals.sla import is_overdue

LIST_PAGE_SIZE: Final = 25
WORKLIST_PAGE_SIZE: Final = 50

# --- the wizard's steps ----------------------------------------------------------------------

PATIENT, HISTORY, SCREENING, ATTACHMENTS, REVIEW = (
    "patient",
    "history",
    "screening",
    "attachments",
    "review",
)
STEPS: Final[tuple[str, ...]] = (PATIENT, HISTORY, SCREENING, ATTACHMENTS, REVIEW)
STEP_TITLES: Final[dict[str, str]] = {
    PATIENT: "Patient",
    HISTORY: "History and prior trials",
    SCREENING: "Screening",
    ATTACHMENTS: "Attachments",
    REVIEW: "Review and submit",
}
#: What "save and continue" / "save draft" post as ``go``.
GO_NEXT, GO_STAY = "next", "stay"

# --- lifecycle actions -----------------------------------------------------------------------

ACTION_LABELS: Final[dict[str, str]] = {
    "sign-off": "Sign off",
    "submit": "Submit",
    "review": "Start review",
    "request-info": "Request information",
    "accept": "Accept",
    "decline": "Decline",
    "schedule": "Schedule the consult",
    "no-show": "Record a no-show",
    "start-treatment": "Start treatment",
    "complete": "Mark treatment completed",
    "acknowledge": "Acknowledge the outcome",
    "cancel": "Cancel the referral",
}
ACTION_DONE: Final[dict[str, str]] = {
    "sign-off": "You signed off referral {number}.",
    "submit": "Referral {number} was sent to the clinic.",
    "review": "You picked up referral {number} for review.",
    "request-info": "Your question on referral {number} was sent to the referrer.",
    "accept": "Referral {number} was accepted.",
    "decline": "Referral {number} was declined.",
    "schedule": "The consult for referral {number} is scheduled.",
    "no-show": "The missed consult on referral {number} was recorded.",
    "start-treatment": "Treatment on referral {number} has started.",
    "complete": "Treatment on referral {number} is marked completed.",
    "acknowledge": "You acknowledged the outcome of referral {number}: the loop is closed.",
    "cancel": "Referral {number} was cancelled.",
}
ActionService = Callable[..., Referral]
ACTION_SERVICES: Final[dict[str, ActionService]] = {
    "sign-off": services.referral_sign_off,
    "submit": services.referral_submit,
    "review": services.referral_review,
    "request-info": services.referral_request_info,
    "accept": services.referral_accept,
    "decline": services.referral_decline,
    "schedule": services.referral_schedule,
    "no-show": services.referral_record_no_show,
    "start-treatment": services.referral_start_treatment,
    "complete": services.referral_complete,
    "acknowledge": services.referral_acknowledge,
    "cancel": services.referral_cancel,
}
#: The button inside an action's form, where the form has fields (its summary names the action).
SUBMIT_LABELS: Final[dict[str, str]] = {
    "submit": "Send the answer",
    "request-info": "Send the question",
    "decline": "Decline the referral",
    "schedule": "Save the consult time",
    "cancel": "Cancel the referral",
}
#: The actions the worklist offers (the rest are taken on the detail page).
WORKLIST_ACTIONS: Final = frozenset(
    {"review", "request-info", "accept", "decline", "schedule", "no-show", "start-treatment"}
)
RETURN_TO_WORKLIST: Final = "worklist"
EDITOR_PARTIES: Final = frozenset({permissions.REFERRER, permissions.PRACTICE_STAFF})


# --- small helpers ---------------------------------------------------------------------------


def _user(request: HttpRequest) -> User:
    # login_required guarantees a signed-in user; the check narrows the type.
    if not isinstance(request.user, User):
        raise Http404
    return request.user


def _referral_or_404(user: User, referral_id: uuid.UUID) -> Referral:
    try:
        return referral_get_for_user(user=user, public_id=referral_id)
    except NotFound as error:
        raise Http404 from error


def _detail_or_404(user: User, referral_id: uuid.UUID) -> ReferralDetail:
    try:
        return referral_detail_for_user(user=user, public_id=referral_id)
    except NotFound as error:
        raise Http404 from error


def _detail_url(referral: Referral) -> str:
    return reverse("referrals:detail", args=[referral.public_id])


def _step_url(referral: Referral, step: str) -> str:
    return reverse("referrals:edit", args=[referral.public_id, step])


@dataclass(frozen=True)
class ErrorLink:
    """One line of an error summary: what is wrong, and the field it links to."""

    label: str
    message: str
    url: str


def error_links(*bound: forms.Form | BaseFormSet[Any]) -> list[ErrorLink]:
    """The errors of these forms (and formsets) for the summary at the top of the page, each
    linked to its field so keyboard and screen-reader users can go straight to it."""
    links: list[ErrorLink] = []
    for form in bound:
        if isinstance(form, BaseFormSet):
            for message in form.non_form_errors():
                links.append(ErrorLink("Prior trials", str(message), "#trials"))
            for index, row in enumerate(form.forms):
                links.extend(
                    ErrorLink(f"Prior trial {index + 1}: {link.label}", link.message, link.url)
                    for link in error_links(row)
                )
            continue
        for name, messages_ in form.errors.items():
            if name == NON_FIELD_ERRORS:
                links.extend(ErrorLink("", str(message), "") for message in messages_)
                continue
            field = form[name]
            links.extend(
                ErrorLink(str(field.label), str(message), f"#{field.auto_id}")
                for message in messages_
            )
    return links


def apply_service_error(
    form: forms.Form, error: ServiceError, field_names: Mapping[str, str] | None = None
) -> None:
    """Put a service's refusal onto the form: its per-field messages on the fields they name
    (``field_names`` maps service paths such as ``patient.given_name`` to form fields), and the
    general message when no field could take it."""
    placed = False
    for path, message in (error.extra.get("fields") or {}).items():
        name = (field_names or {}).get(path, path)
        if name in form.fields:
            form.add_error(name, str(message))
            placed = True
    if not placed:
        form.add_error(None, str(error.detail))


@dataclass(frozen=True)
class Problem:
    """Something a referral still lacks before submission, linked to the step and field."""

    label: str
    message: str
    step: str
    url: str


def _problem_target(path: str) -> tuple[str, str, str]:
    """(step, field anchor, label) for a ``submission_problems`` path."""
    head, _, rest = path.partition(".")
    patient_fields = PatientForm.base_fields
    history_fields = HistoryForm.base_fields
    if head == "patient" and rest in patient_fields:
        return PATIENT, f"id_{rest}", f"Patient: {patient_fields[rest].label}"
    if head == "insurance" and rest in patient_fields:
        return PATIENT, f"id_{rest}", str(patient_fields[rest].label)
    if head == "provider":
        return PATIENT, "id_provider", "Referring provider"
    if head in history_fields:
        label = str(history_fields[head].label)
        if head.startswith("office_"):
            label = f"Office vital signs: {label}"
        return HISTORY, f"id_{head}", label
    if head == "prior_trials":
        position, _, key = rest.partition(".")
        if position.isdigit() and key in TrialForm.base_fields:
            label = f"Prior trial {int(position) + 1}: {TrialForm.base_fields[key].label}"
            return HISTORY, f"id_{TRIAL_PREFIX}-{position}-{key}", label
        return HISTORY, "trials", "Prior antidepressant trials"
    if head == "phq9_answers" and rest.isdigit():
        return SCREENING, f"id_{phq9_field_name(int(rest))}", f"PHQ-9 item {int(rest) + 1}"
    if head == "contraindications" and rest in CONTRAINDICATION_LABELS:
        label = f"Contraindication: {CONTRAINDICATION_LABELS[rest]}"
        return SCREENING, f"id_{contraindication_field_name(rest)}", label
    if head in {"suicidal_intent", "urgent"}:
        return SCREENING, f"id_{head}", "Screening"
    if head == "consent_attested":
        return REVIEW, "id_consent_attested", "Consent"
    if head == "answer":
        return REVIEW, "id_answer", "Your answer to the clinic's question"
    return REVIEW, "", path


def problems_for(referral: Referral, fields: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for path, message in fields.items():
        step, anchor, label = _problem_target(path)
        url = _step_url(referral, step) + (f"#{anchor}" if anchor else "")
        problems.append(Problem(label=label, message=str(message), step=step, url=url))
    # In the order of the wizard, so the list reads from the first step to the last.
    return sorted(problems, key=lambda problem: STEPS.index(problem.step))


def _first_incomplete_step(referral: Referral) -> str:
    problems = problems_for(referral, services.submission_problems(referral))
    return problems[0].step if problems else REVIEW


@dataclass(frozen=True)
class Phq9Row:
    number: int
    wording: str
    answer: int | None
    answer_label: str


def phq9_rows(referral: Referral) -> list[Phq9Row]:
    questionnaire = phq9_questionnaire()
    answers = list(referral.phq9_answers or [])
    rows: list[Phq9Row] = []
    for index, wording in enumerate(questionnaire.items):
        value = answers[index] if index < len(answers) else None
        label = "Not answered" if value is None else questionnaire.option_label(int(value))
        rows.append(Phq9Row(index + 1, wording, value, label))
    return rows


def contraindication_rows(referral: Referral) -> list[tuple[str, bool | None]]:
    answers = referral.contraindications or {}
    return [(CONTRAINDICATION_LABELS[key], answers.get(key)) for key in CONTRAINDICATION_KEYS]


def _summary_context(detail: ReferralDetail) -> dict[str, Any]:
    """What the read-only summary of a referral (detail page, review step) shows."""
    referral = detail.referral
    duplicates = [
        duplicate
        for duplicate in (detail.possible_duplicates or [])
        if duplicate.patient_id != referral.patient_id
    ]
    return {
        "detail": detail,
        "referral": referral,
        "patient": referral.patient,
        "screening": detail.screening,
        "prior_trials": detail.prior_trials,
        "phq9": phq9_rows(referral),
        "phq9_title": phq9_questionnaire().title,
        "contraindications": contraindication_rows(referral),
        "same_patient_referrals": [
            duplicate
            for duplicate in (detail.possible_duplicates or [])
            if duplicate.patient_id == referral.patient_id
        ],
        "possible_duplicates": duplicates,
    }


# --- the list and the worklist ---------------------------------------------------------------


def triage_open(referral: Referral) -> bool:
    """Triage is still running, so its due time is worth showing."""
    return referral.status in permissions.TRIAGE_STATES and referral.triage_due_at is not None


@dataclass(frozen=True)
class ReferralRow:
    referral: Referral
    overdue: bool

    @property
    def triage_open(self) -> bool:
        return triage_open(self.referral)


@require_GET
@login_required
def referral_list(request: HttpRequest) -> HttpResponse:
    """The referrals the user may see, newest first, with filters and a count per status.

    Rows carry no PHI (number, status, people, dates), so showing the list is not a PHI read."""
    user = _user(request)
    access = access_for(user)
    filters = ReferralFilterForm(request.GET or None, statuses=ReferralStatus.choices)
    status_code = 200
    if filters.is_bound and not filters.is_valid():
        referrals = referral_list_for_user(user=user).none()
        status_code = 400
    else:
        chosen = filters.cleaned_data if filters.is_bound else {}
        referrals = referral_list_for_user(
            user=user,
            status=[chosen["status"]] if chosen.get("status") else None,
            urgent=True if chosen.get("urgent") else None,
            overdue=True if chosen.get("overdue") else None,
            q=chosen.get("q") or None,
        )
    counts = dict(
        referral_list_for_user(user=user)
        .order_by()
        .values_list("status")
        .annotate(total=Count("id"))
        .values_list("status", "total")
    )
    page = Paginator(referrals, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [ReferralRow(referral, is_overdue(referral, now)) for referral in page.object_list]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filters": filters,
        "rows": rows,
        "page": page,
        "page_query": query.urlencode(),
        "status_counts": [
            (value, label, counts.get(value, 0))
            for value, label in ReferralStatus.choices
            if counts.get(value, 0)
        ],
        "can_create": bool(access.practice_ids),
        "is_clinic": bool(access.clinic_ids),
        "error_summary": error_links(filters) if status_code == 400 else [],
    }
    return render(request, "referrals/list.html", context, status=status_code)


@dataclass
class ActionPanel:
    """One action the user may take now, with its form (bound and showing errors after a
    refused attempt)."""

    action: str
    label: str
    submit_label: str
    form: NoInputForm
    url: str
    error: str = ""

    @property
    def needs_input(self) -> bool:
        return bool(self.form.fields)


def action_form(
    action: str,
    referral: Referral,
    data: Mapping[str, Any] | None = None,
    *,
    auto_id: str = "id_%s",
) -> NoInputForm:
    """The form of ``action`` for this referral; ``submit`` asks for an answer only when the
    clinic asked a question."""
    form_class = ACTION_FORMS[action]
    if action == "submit" and referral.status != ReferralStatus.INFO_REQUESTED:
        form_class = NoInputForm
    return form_class(data, prefix=action, auto_id=auto_id)


def _action_label(action: str, referral: Referral) -> str:
    if action == "schedule" and referral.status == ReferralStatus.SCHEDULED:
        return "Reschedule the consult"
    if action == "submit" and referral.status == ReferralStatus.INFO_REQUESTED:
        return "Answer the question"
    return ACTION_LABELS[action]


def action_panels(
    referral: Referral,
    actions: Iterable[str],
    *,
    auto_id: str = "id_%s",
    failed: tuple[str, NoInputForm, str] | None = None,
) -> list[ActionPanel]:
    panels: list[ActionPanel] = []
    for action in actions:
        panel = ActionPanel(
            action=action,
            label=_action_label(action, referral),
            submit_label=SUBMIT_LABELS.get(action, _action_label(action, referral)),
            form=action_form(action, referral, auto_id=auto_id),
            url=reverse("referrals:action", args=[referral.public_id, action]),
        )
        if failed is not None and failed[0] == action:
            panel.form, panel.error = failed[1], failed[2]
        panels.append(panel)
    return panels


@dataclass
class WorklistRow:
    referral: Referral
    overdue: bool
    panels: list[ActionPanel]
    error: str = ""

    @property
    def triage_open(self) -> bool:
        return triage_open(self.referral)


def _render_worklist(
    request: HttpRequest,
    user: User,
    *,
    failed: tuple[Referral, str, NoInputForm, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    access = access_for(user)
    if not access.clinic_ids:
        raise PermissionDenied("The triage worklist is for clinic staff.")
    page = Paginator(referral_worklist_for_user(user=user), WORKLIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    now = timezone.now()
    rows: list[WorklistRow] = []
    for index, referral in enumerate(page.object_list):
        # Pure predicates over the one access snapshot: no query per row.
        parties = permissions.referral_parties(access, referral)
        allowed = [
            action
            for action in transitions.allowed_actions(parties, referral, now)
            if action in WORKLIST_ACTIONS
        ]
        row_failed = None
        if failed is not None and failed[0].pk == referral.pk:
            row_failed = (failed[1], failed[2], failed[3])
        rows.append(
            WorklistRow(
                referral=referral,
                overdue=is_overdue(referral, now),
                panels=action_panels(
                    referral, allowed, auto_id=f"id_row{index}_%s", failed=row_failed
                ),
                error=row_failed[2] if row_failed else "",
            )
        )
    context = {"rows": rows, "page": page, "now": now}
    return render(request, "referrals/worklist.html", context, status=status)


@require_GET
@login_required
def worklist(request: HttpRequest) -> HttpResponse:
    """The clinic's triage worklist: open referrals, urgent first, then by triage due time."""
    return _render_worklist(request, _user(request))


# --- the detail page and actions -------------------------------------------------------------


def _render_detail(
    request: HttpRequest,
    user: User,
    referral_id: uuid.UUID,
    *,
    failed: tuple[str, NoInputForm, str] | None = None,
    problems: list[Problem] | None = None,
    status: int = 200,
) -> HttpResponse:
    detail = _detail_or_404(user, referral_id)
    referral = detail.referral
    events: list[ReferralEvent] = list(referral_events_for_user(user=user, referral=referral))
    attachments: list[Attachment] = list(attachment_list_for_user(user=user, referral=referral))
    access = access_for(user)
    editable = bool(detail.parties & EDITOR_PARTIES) and permissions.can_edit_referral(
        access, referral
    )
    allowed = list(detail.allowed_actions)
    # Submitting a draft happens on the wizard's review step (consent and completeness are
    # checked there); answering the clinic's question has its own form by the question.
    answer_panel = None
    if "submit" in allowed:
        allowed.remove("submit")
        if referral.status == ReferralStatus.INFO_REQUESTED:
            answer_panel = action_panels(referral, ["submit"], failed=failed)[0]
    context = {
        **_summary_context(detail),
        "events": events,
        "attachments": attachments,
        "editable": editable,
        "can_submit_draft": referral.status == ReferralStatus.DRAFT
        and "submit" in detail.allowed_actions,
        "resume_url": reverse("referrals:resume", args=[referral.public_id]),
        "review_url": _step_url(referral, REVIEW),
        "attachments_url": _step_url(referral, ATTACHMENTS),
        "panels": action_panels(referral, allowed, failed=failed),
        "answer_panel": answer_panel,
        "action_error": failed[2] if failed else "",
        "problems": problems or [],
        "incomplete": bool(problems),
        "sign_off_pending": referral.status == ReferralStatus.DRAFT
        and referral.created_by_id != referral.provider_id
        and permissions.needs_sign_off(referral),
    }
    return render(request, "referrals/detail.html", context, status=status)


@require_GET
@login_required
def referral_detail(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    return _render_detail(request, _user(request), referral_id)


@require_POST
@login_required
def referral_action(request: HttpRequest, referral_id: uuid.UUID, action: str) -> HttpResponse:
    """Take one lifecycle action (the detail page's and the worklist's forms post here)."""
    if action not in ACTION_SERVICES:
        raise Http404
    user = _user(request)
    referral = _referral_or_404(user, referral_id)
    from_worklist = request.POST.get("return_to") == RETURN_TO_WORKLIST
    form = action_form(action, referral, request.POST)
    status = 400
    problems: list[Problem] | None = None
    message = ""
    if form.is_valid():
        try:
            updated = ACTION_SERVICES[action](actor=user, referral=referral, **form.to_arguments())
        except NotFound as error:
            raise Http404 from error
        except Forbidden as error:
            # A party who never takes this action: say so, without showing the referral again.
            context = {"referral": referral, "message": str(error.detail)}
            return render(request, "referrals/action_refused.html", context, status=403)
        except ServiceError as error:
            status = error.status_code
            message = str(error.detail)
            fields = error.extra.get("fields") or {}
            if error.code == "incomplete" and "answer" not in fields:
                problems = problems_for(referral, fields)
            else:
                apply_service_error(form, error)
        else:
            messages.success(request, ACTION_DONE[action].format(number=updated.number))
            if from_worklist:
                return redirect("referrals:worklist")
            return redirect(_detail_url(updated))
    else:
        message = "The action was not taken: correct the form below."
    if from_worklist:
        return _render_worklist(
            request, user, failed=(referral, action, form, message), status=status
        )
    return _render_detail(
        request,
        user,
        referral.public_id,
        failed=(action, form, message),
        problems=problems,
        status=status,
    )


@require_GET
@login_required
def attachment_download(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponseBase:
    """An attachment's bytes, decrypted and checked against its SHA-256, as a download."""
    user = _user(request)
    try:
        attachment, chunks = attachment_open_for_user(user=user, public_id=attachment_id)
    except NotFound as error:
        raise Http404 from error
    except (DecryptionError, EncryptedFileMissing):
        # Fails closed: logged as a security event by the storage; nothing of the file is sent.
        return render(request, "referrals/attachment_unavailable.html", status=500)
    return file_download_response(
        chunks,
        content_type=attachment.content_type,
        filename=attachment.original_name,
        size=attachment.size,
    )


# --- the wizard ------------------------------------------------------------------------------


def _practices_for(user: User, access: Access) -> list[Organization]:
    return [
        organization
        for organization in user_organizations(user=user).filter(kind=Organization.Kind.PRACTICE)
        if organization.pk in access.practice_ids
    ]


def _steps_nav(referral: Referral | None, current: str) -> list[dict[str, Any]]:
    return [
        {
            "key": step,
            "number": number,
            "title": STEP_TITLES[step],
            "url": _step_url(referral, step) if referral is not None else "",
            "current": step == current,
        }
        for number, step in enumerate(STEPS, start=1)
    ]


def _render_step(
    request: HttpRequest,
    referral: Referral | None,
    step: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    full = {
        "referral": referral,
        "step": step,
        "step_title": STEP_TITLES[step],
        "step_number": STEPS.index(step) + 1,
        "step_count": len(STEPS),
        "steps": _steps_nav(referral, step),
        "crisis": referral is not None and referral.suicidal_intent,
        **context,
    }
    return render(request, f"referrals/wizard/{step}.html", full, status=status)


def _after_save(request: HttpRequest, referral: Referral, step: str) -> HttpResponseRedirect:
    if request.POST.get("go") == GO_STAY:
        messages.success(request, f"Draft {referral.number} saved.")
        return redirect(_step_url(referral, step))
    return redirect(_step_url(referral, STEPS[STEPS.index(step) + 1]))


#: Service error paths -> fields of the patient form.
PATIENT_FIELD_NAMES: Final = {
    **{f"patient.{key}": key for key in ("given_name", "family_name", "birth_date", "sex")},
    **{f"patient.{key}": key for key in ("phone", "email")},
    **{f"insurance.{key}": key for key in ("payer", "member_id", "group_number")},
}


@dataclass(frozen=True)
class DuplicateCandidate:
    public_id: uuid.UUID
    numbers: list[str]
    created_at: Any


def _duplicate_choices(candidates: list[DuplicateCandidate]) -> list[tuple[str, str]]:
    choices: list[tuple[str, str]] = []
    for candidate in candidates:
        referrals = ", ".join(candidate.numbers) or "no referrals yet"
        created = timezone.localtime(candidate.created_at).strftime("%d %b %Y")
        choices.append(
            (
                str(candidate.public_id),
                f"Yes, the same patient (record created {created}; referrals: {referrals})",
            )
        )
    return choices


@require_http_methods(["GET", "POST"])
@login_required
def referral_new(request: HttpRequest) -> HttpResponse:
    """Step 1 for a new referral: the patient. Saving creates the draft.

    When the practice already has a patient with this name and date of birth (found through the
    blind index, never by decrypting), the page asks "is this the same patient?" before creating
    anything: the answer reuses that patient record or creates a new one."""
    user = _user(request)
    access = access_for(user)
    if not access.practice_ids:
        raise PermissionDenied("Only members of a referring practice can start a referral.")
    practices = _practices_for(user, access)
    providers = list(practice_providers_for_user(user=user))
    form = PatientForm(
        request.POST if request.method == "POST" else None,
        practices=practices,
        providers=providers,
    )
    context: dict[str, Any] = {"form": form, "duplicate_form": None}
    if request.method == "GET":
        return _render_step(request, None, PATIENT, context)
    if not form.is_valid():
        context["error_summary"] = error_links(form)
        return _render_step(request, None, PATIENT, context, status=400)
    practice_id = form.practice_id()
    practice = next(
        (p for p in practices if practice_id is None or p.public_id == practice_id),
        None,
    )
    data: dict[str, Any] = form.to_data()
    if practice_id is not None:
        data["practice"] = practice_id
    patient = data["patient"]
    if (
        practice is not None
        and patient["given_name"]
        and patient["family_name"]
        and (patient["birth_date"] is not None)
    ):
        found = patient_duplicates_for_user(
            user=user,
            practice=practice,
            given_name=patient["given_name"],
            family_name=patient["family_name"],
            birth_date=patient["birth_date"],
        ).prefetch_related("referrals")
        candidates = [
            DuplicateCandidate(
                public_id=candidate.public_id,
                numbers=sorted(referral.number for referral in candidate.referrals.all()),
                created_at=candidate.created_at,
            )
            for candidate in found
        ]
        if candidates:
            choices = _duplicate_choices(candidates)
            asked = "same_patient" in request.POST
            duplicate_form = DuplicateChoiceForm(request.POST if asked else None, choices=choices)
            context["duplicate_form"] = duplicate_form
            if not asked:
                return _render_step(request, None, PATIENT, context)
            if not duplicate_form.is_valid():
                context["error_summary"] = error_links(duplicate_form)
                return _render_step(request, None, PATIENT, context, status=400)
            patient_id = duplicate_form.patient_id()
            if patient_id is not None:
                data["patient_id"] = patient_id
    try:
        referral = services.referral_create(actor=user, data=data)
    except ServiceError as error:
        apply_service_error(form, error, PATIENT_FIELD_NAMES)
        context["error_summary"] = error_links(form)
        return _render_step(request, None, PATIENT, context, status=error.status_code)
    messages.success(request, f"Draft {referral.number} created.")
    return _after_save(request, referral, PATIENT)


@require_GET
@login_required
def referral_resume(request: HttpRequest, referral_id: uuid.UUID) -> HttpResponse:
    """Back to the wizard where the draft is still incomplete (the review step when complete)."""
    user = _user(request)
    referral = _editable_referral(request, user, referral_id)
    if isinstance(referral, HttpResponseRedirect):
        return referral
    return redirect(_step_url(referral, _first_incomplete_step(referral)))


def _editable_referral(
    request: HttpRequest, user: User, referral_id: uuid.UUID
) -> Referral | HttpResponseRedirect:
    """The referral if the user may edit it now; 404 if they may not see it, 403 if they are not
    its referrer or practice staff, and back to the detail page once it is no longer editable."""
    referral = _referral_or_404(user, referral_id)
    access = access_for(user)
    if not permissions.referral_parties(access, referral) & EDITOR_PARTIES:
        audit_denied(
            actor=user,
            action="referral.update",
            object_type="referral",
            object_id=referral.public_id,
        )
        raise PermissionDenied("Only the referring provider or their practice staff can edit it.")
    if not permissions.can_edit_referral(access, referral):
        messages.info(request, f"Referral {referral.number} can no longer be changed.")
        return redirect(_detail_url(referral))
    return referral


@require_http_methods(["GET", "POST"])
@login_required
def referral_edit(request: HttpRequest, referral_id: uuid.UUID, step: str) -> HttpResponse:
    """One step of the wizard for an existing draft (or a referral waiting for information)."""
    handler = STEP_HANDLERS.get(step)
    if handler is None:
        raise Http404
    user = _user(request)
    referral = _editable_referral(request, user, referral_id)
    if isinstance(referral, HttpResponseRedirect):
        return referral
    return handler(request, user, referral)


def _update(
    request: HttpRequest,
    user: User,
    referral: Referral,
    data: Mapping[str, Any],
    form: forms.Form,
    field_names: Mapping[str, str] | None = None,
) -> tuple[Referral | None, int]:
    """Save through the service; on refusal put the errors on ``form`` and return its status."""
    try:
        return services.referral_update(actor=user, referral=referral, data=data), 200
    except NotFound as error:
        raise Http404 from error
    except ServiceError as error:
        apply_service_error(form, error, field_names)
        return None, error.status_code


def _patient_step(request: HttpRequest, user: User, referral: Referral) -> HttpResponse:
    providers = list(practice_providers_for_user(user=user))
    if request.method == "POST":
        form = PatientForm(request.POST, providers=providers)
        status = 400
        if form.is_valid():
            updated, status = _update(
                request, user, referral, form.to_data(), form, PATIENT_FIELD_NAMES
            )
            if updated is not None:
                return _after_save(request, updated, PATIENT)
        detail = _detail_or_404(user, referral.public_id)
        context = {**_summary_context(detail), "form": form, "error_summary": error_links(form)}
        return _render_step(request, detail.referral, PATIENT, context, status=status)
    detail = _detail_or_404(user, referral.public_id)
    form = PatientForm(initial=PatientForm.initial_for(detail.referral), providers=providers)
    return _render_step(
        request, detail.referral, PATIENT, {**_summary_context(detail), "form": form}
    )


def _history_step(request: HttpRequest, user: User, referral: Referral) -> HttpResponse:
    if request.method == "POST":
        form = HistoryForm(request.POST)
        trials = trial_formset(request.POST, [], extra=0)
        removed_text = request.POST.get("remove_trial", "")
        removed = int(removed_text) if removed_text.isdigit() else None
        adding = "add_trial" in request.POST
        rows_valid = all(
            row.is_valid() for index, row in enumerate(trials.forms) if index != removed
        )
        status = 400
        if form.is_valid() and rows_valid and not trials.non_form_errors():
            kept = [
                row.to_data()
                for index, row in enumerate(trials.forms)
                if index != removed and not row.is_blank()
            ]
            updated, status = _update(
                request, user, referral, {**form.to_data(), "prior_trials": kept}, form
            )
            if updated is not None:
                url = _step_url(updated, HISTORY)
                if removed is not None:
                    messages.success(request, "The trial was removed and the draft saved.")
                    return redirect(url + "#trials")
                if adding:
                    if len(kept) >= MAX_TRIALS:
                        messages.info(request, f"A referral holds at most {MAX_TRIALS} trials.")
                        return redirect(url + "#trials")
                    # No fragment: a browser skips autofocus when the URL targets an element.
                    return redirect(url + "?add=1")
                return _after_save(request, updated, HISTORY)
        detail = _detail_or_404(user, referral.public_id)
        context = {
            "form": form,
            "trials": trials,
            "can_add_trial": len(trials.forms) < MAX_TRIALS,
            "error_summary": error_links(form, trials),
        }
        return _render_step(request, detail.referral, HISTORY, context, status=status)
    detail = _detail_or_404(user, referral.public_id)
    initial = [TrialForm.initial_for(trial) for trial in detail.prior_trials]
    adding = request.GET.get("add") == "1" and len(initial) < MAX_TRIALS
    trials = trial_formset(None, initial, extra=1 if adding or not initial else 0)
    if adding:
        # The new row takes the focus, so keyboard users continue typing where they asked to.
        trials.forms[-1].fields["drug"].widget.attrs["autofocus"] = True
    context = {
        "form": HistoryForm(initial=HistoryForm.initial_for(detail.referral)),
        "trials": trials,
        "can_add_trial": len(trials.forms) < MAX_TRIALS,
    }
    return _render_step(request, detail.referral, HISTORY, context)


def _screening_step(request: HttpRequest, user: User, referral: Referral) -> HttpResponse:
    if request.method == "POST":
        form = ScreeningForm(request.POST)
        status = 400
        if form.is_valid():
            updated, status = _update(request, user, referral, form.to_data(), form)
            if updated is not None:
                if updated.suicidal_intent:
                    # Never just the next step: the crisis resources come first, on this page.
                    # (No flash message: those travel in a cookie, and this one would be clinical.)
                    return redirect(_step_url(updated, SCREENING) + "#crisis-resources")
                return _after_save(request, updated, SCREENING)
        detail = _detail_or_404(user, referral.public_id)
        context = {
            "form": form,
            "questionnaire": phq9_questionnaire(),
            "error_summary": error_links(form),
        }
        return _render_step(request, detail.referral, SCREENING, context, status=status)
    detail = _detail_or_404(user, referral.public_id)
    form = ScreeningForm(initial=ScreeningForm.initial_for(detail.referral))
    context = {"form": form, "questionnaire": phq9_questionnaire()}
    return _render_step(request, detail.referral, SCREENING, context)


def _attachments_step(request: HttpRequest, user: User, referral: Referral) -> HttpResponse:
    status = 200
    form = AttachmentForm()
    if request.method == "POST":
        form = AttachmentForm(request.POST, request.FILES)
        status = 400
        if form.is_valid():
            try:
                services.attachment_upload(
                    actor=user, referral=referral, uploaded_file=form.cleaned_data["file"]
                )
            except NotFound as error:
                raise Http404 from error
            except ServiceError as error:
                status = error.status_code
                form.add_error("file", str(error.detail))
            else:
                # No file name in the message: names can identify the patient, and messages
                # travel in a cookie.
                messages.success(request, "The file was uploaded and stored encrypted.")
                return redirect(_step_url(referral, ATTACHMENTS))
    attachments = list(attachment_list_for_user(user=user, referral=referral))
    context = {
        "form": form,
        "attachments": attachments,
        "error_summary": error_links(form) if form.is_bound else [],
    }
    return _render_step(request, referral, ATTACHMENTS, context, status=status)


def _review_step(request: HttpRequest, user: User, referral: Referral) -> HttpResponse:
    detail = _detail_or_404(user, referral.public_id)
    referral = detail.referral
    question = detail.open_question
    status = 200
    problems: list[Problem] = []
    initial = {"consent_attested": referral.consent_attested}
    form = ReviewForm(initial=initial, question=question)
    if request.method == "POST":
        form = ReviewForm(request.POST, question=question)
        intent = request.POST.get("intent", "save")
        status = 400
        if form.is_valid():
            result = _review_post(request, user, referral, form, intent)
            if isinstance(result, HttpResponseRedirect):
                return result
            status, problems = result
            # Show what was saved (the consent) with the refusal.
            detail = _detail_or_404(user, referral.public_id)
            referral = detail.referral
    else:
        problems = problems_for(referral, services.submission_problems(referral))
    context = {
        **_summary_context(detail),
        "form": form,
        "question": question,
        "problems": problems,
        "can_sign_off": "sign-off" in detail.allowed_actions,
        "can_submit": "submit" in detail.allowed_actions,
        "waiting_for_sign_off": "submit" not in detail.allowed_actions
        and permissions.PRACTICE_STAFF in detail.parties,
        "error_summary": error_links(form),
        "attachments": list(attachment_list_for_user(user=user, referral=referral)),
    }
    return _render_step(request, referral, REVIEW, context, status=status)


def _review_post(
    request: HttpRequest, user: User, referral: Referral, form: ReviewForm, intent: str
) -> HttpResponseRedirect | tuple[int, list[Problem]]:
    """Save the consent, then sign off or submit when asked. Returns the redirect on success,
    or the status and the submission problems to show with the form's errors."""
    consent = form.cleaned_data["consent_attested"]
    if consent != referral.consent_attested:
        updated, status = _update(request, user, referral, {"consent_attested": consent}, form)
        if updated is None:
            return status, []
        referral = updated
    if intent == "sign-off":
        try:
            referral = services.referral_sign_off(actor=user, referral=referral)
        except NotFound as error:
            raise Http404 from error
        except ServiceError as error:
            apply_service_error(form, error)
            return error.status_code, []
        messages.success(request, ACTION_DONE["sign-off"].format(number=referral.number))
        return redirect(_detail_url(referral))
    if intent == "submit":
        answer = form.cleaned_data.get("answer") or None
        try:
            referral = services.referral_submit(actor=user, referral=referral, answer=answer)
        except NotFound as error:
            raise Http404 from error
        except ServiceError as error:
            fields = dict(error.extra.get("fields") or {})
            if "answer" in fields:
                form.add_error("answer", fields.pop("answer"))
            if (error.code != "incomplete" or not fields) and "answer" not in form.errors:
                form.add_error(None, str(error.detail))
            problems = problems_for(referral, fields) if error.code == "incomplete" else []
            return error.status_code, problems
        messages.success(request, ACTION_DONE["submit"].format(number=referral.number))
        return redirect(_detail_url(referral))
    messages.success(request, f"Draft {referral.number} saved.")
    return redirect(_step_url(referral, REVIEW))


StepHandler = Callable[[HttpRequest, User, Referral], HttpResponse]
STEP_HANDLERS: Final[dict[str, StepHandler]] = {
    PATIENT: _patient_step,
    HISTORY: _history_step,
    SCREENING: _screening_step,
    ATTACHMENTS: _attachments_step,
    REVIEW: _review_step,
}
