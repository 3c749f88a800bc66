"""Reads of the audit trail, for clinic admins only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from portal.accounts.models import Membership, Organization, Role, User
from portal.accounts.permissions import AnyUser
from portal.api.errors import Forbidden
from portal.audit.models import AuditEvent
from portal.audit.permissions import can_review_audit_trail
from portal.audit.services import Details, audit_denied

AUDIT_TRAIL = "audit_trail"


@dataclass(frozen=True)
class AuditEventFilters:
    """What the reviewer narrowed the trail to; every value is a public id or a type name."""

    actor: uuid.UUID | None = None
    object_type: str = ""
    object_id: str = ""
    referral: uuid.UUID | None = None
    patient: uuid.UUID | None = None

    def as_details(self) -> Details:
        """The filters as audit details (for the export event): public ids only, no PHI."""
        values = {
            "filter_actor": str(self.actor) if self.actor else None,
            "filter_object_type": self.object_type or None,
            "filter_object_id": self.object_id or None,
            "filter_referral": str(self.referral) if self.referral else None,
            "filter_patient": str(self.patient) if self.patient else None,
        }
        return {key: value for key, value in values.items() if value is not None}


def audit_trail_check_access(*, user: AnyUser) -> None:
    """Raise Forbidden (and record the denial) unless ``user`` may review the audit trail.

    The audit trail is a feature, not an object a user could probe for, so a refusal is a 403,
    not the 404 used for objects."""
    if can_review_audit_trail(user):
        return
    if isinstance(user, User):
        audit_denied(actor=user, action="audit.list", object_type=AUDIT_TRAIL, object_id=None)
    raise Forbidden("Only clinic admins can review the audit trail.")


def _related_to(object_type: str, public_id: uuid.UUID, details_key: str) -> Q:
    """Events about the object itself, or about something else that names it in details."""
    text = str(public_id)
    # The has_key condition repeats the partial index's predicate so PostgreSQL can use it.
    named_in_details = Q(**{"details__has_key": details_key, f"details__{details_key}": text})
    return Q(object_type=object_type, object_id=text) | named_in_details


def audit_event_list_for_user(*, user: AnyUser, filters: AuditEventFilters) -> QuerySet[AuditEvent]:
    """The trail, newest first, narrowed by ``filters``; clinic admins only."""
    audit_trail_check_access(user=user)
    events = AuditEvent.objects.select_related("actor", "seal").order_by("-sequence")
    if filters.actor is not None:
        events = events.filter(actor__public_id=filters.actor)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    if filters.object_id:
        events = events.filter(object_id=filters.object_id)
    if filters.referral is not None:
        events = events.filter(_related_to("referral", filters.referral, "referral"))
    if filters.patient is not None:
        events = events.filter(_related_to("patient", filters.patient, "patient"))
    return events


def audit_alert_recipients() -> QuerySet[User]:
    """Active clinic admins: they hear when the audit chain fails verification."""
    admins = Membership.objects.filter(
        is_active=True, role=Role.CLINIC_ADMIN, organization__kind=Organization.Kind.CLINIC
    )
    return User.objects.filter(is_active=True, memberships__in=admins).distinct().order_by("email")
