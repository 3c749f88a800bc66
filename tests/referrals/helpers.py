"""Shared test helpers: calling each action, and snapshots proving "nothing changed"."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts.models import User
from portal.audit.context import DeferredEvent
from portal.audit.models import AuditEvent
from portal.notifications.models import EmailDelivery, Notification
from referrals import services
from referrals.models import Attachment, Patient, PriorTrial, Referral, ReferralEvent
from tests.personas import Cast

ActionCall = Callable[[User, Referral], Referral]


def _consult_time() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=2)


#: Each action called through its service with a valid body.
SERVICE_CALLS: dict[str, ActionCall] = {
    "sign-off": lambda actor, referral: services.referral_sign_off(actor=actor, referral=referral),
    "submit": lambda actor, referral: services.referral_submit(
        actor=actor,
        referral=referral,
        answer="The evaluation is attached." if referral.status == "info_requested" else None,
    ),
    "review": lambda actor, referral: services.referral_review(actor=actor, referral=referral),
    "request-info": lambda actor, referral: services.referral_request_info(
        actor=actor, referral=referral, question="Please send the last evaluation."
    ),
    "accept": lambda actor, referral: services.referral_accept(actor=actor, referral=referral),
    "decline": lambda actor, referral: services.referral_decline(
        actor=actor, referral=referral, reason="Not eligible.", advice="Try TMS."
    ),
    "schedule": lambda actor, referral: services.referral_schedule(
        actor=actor, referral=referral, consult_at=_consult_time()
    ),
    "no-show": lambda actor, referral: services.referral_record_no_show(
        actor=actor, referral=referral
    ),
    "start-treatment": lambda actor, referral: services.referral_start_treatment(
        actor=actor, referral=referral
    ),
    "complete": lambda actor, referral: services.referral_complete(actor=actor, referral=referral),
    "acknowledge": lambda actor, referral: services.referral_acknowledge(
        actor=actor, referral=referral
    ),
    "cancel": lambda actor, referral: services.referral_cancel(
        actor=actor, referral=referral, reason="The patient moved away."
    ),
}


def action_body(action: str, status: str) -> dict[str, Any]:
    """A valid API body for ``action`` on a referral in ``status``."""
    if action == "submit" and status == "info_requested":
        return {"answer": "The evaluation is attached."}
    return {
        "request-info": {"question": "Please send the last evaluation."},
        "decline": {"reason": "Not eligible.", "advice": "Try TMS."},
        "schedule": {"consult_at": _consult_time().isoformat()},
        "cancel": {"reason": "The patient moved away."},
    }.get(action, {})


#: The persona who takes each action in the normal course of things.
ACTING_PERSONA: dict[str, str] = {
    "sign-off": "provider",
    "submit": "provider",
    "review": "coordinator",
    "request-info": "coordinator",
    "accept": "coordinator",
    "decline": "coordinator",
    "schedule": "coordinator",
    "no-show": "coordinator",
    "start-treatment": "clinician",
    "complete": "clinician",
    "acknowledge": "provider",
    "cancel": "provider",
}


def api_client(cast: Cast, persona: str) -> APIClient:
    client = APIClient()
    user = cast[persona].user
    if user is not None:
        client.force_authenticate(user)
    return client


@dataclass(frozen=True)
class Snapshot:
    """Everything a denied or refused call must leave as it was."""

    referrals: list[tuple[Any, ...]]
    patients: int
    trials: int
    events: int
    attachments: int
    allowed_audit: int
    notifications: int
    deliveries: int
    mails: int

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            referrals=list(
                Referral.objects.order_by("pk").values_list(
                    "pk", "status", "updated_at", "urgent", "provider_id", "practice_id"
                )
            ),
            patients=Patient.objects.count(),
            trials=PriorTrial.objects.count(),
            events=ReferralEvent.objects.count(),
            attachments=Attachment.objects.count(),
            allowed_audit=AuditEvent.objects.filter(outcome="allowed").count(),
            notifications=Notification.objects.count(),
            deliveries=EmailDelivery.objects.count(),
            mails=len(mail.outbox),
        )


def enqueued(callbacks: list[Callable[[], Any]]) -> list[Callable[[], Any]]:
    """On-commit callbacks other than deferred audit writes (a denial's audit row is one)."""
    return [
        callback
        for callback in callbacks
        if not isinstance(getattr(callback, "__self__", None), DeferredEvent)
    ]
