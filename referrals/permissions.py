"""Who may see and act on a referral: small pure predicates over a snapshot of the user's roles.

A request reads the user's active memberships once (``access_for``) and every predicate below is a
pure function of that snapshot and the referral, so ``allowed_actions`` for a page of referrals
costs no further queries and services, selectors and the API share one definition of each rule.

The parties to a referral (``referral_parties``):

- ``referrer``: the referral's provider, while an active provider of the referring practice;
- ``practice_staff``: practice staff of the referring practice (they act on the provider's behalf);
- ``practice_member``: any active member of the referring practice (a colleague may read);
- ``coordinator`` / ``clinician`` / ``clinic_admin``: the receiving clinic's roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from portal.accounts.models import CLINIC_ROLES, PRACTICE_ROLES, Organization, Role
from portal.accounts.permissions import AnyUser, is_signed_in, principal_facts
from portal.core.request_cache import remember
from referrals.models import Referral, ReferralStatus

REFERRER: Final = "referrer"
PRACTICE_STAFF: Final = "practice_staff"
PRACTICE_MEMBER: Final = "practice_member"
COORDINATOR: Final = "coordinator"
CLINICIAN: Final = "clinician"
CLINIC_ADMIN: Final = "clinic_admin"

#: States in which the referrer's side may still change the content.
EDITABLE_STATES: Final = frozenset({ReferralStatus.DRAFT, ReferralStatus.INFO_REQUESTED})
#: States the clinic never sees: a draft belongs to the practice until it is submitted.
PRACTICE_ONLY_STATES: Final = frozenset({ReferralStatus.DRAFT})
#: States in which triage is running against the service-level clock.
TRIAGE_STATES: Final = frozenset({ReferralStatus.SUBMITTED, ReferralStatus.IN_REVIEW})


@dataclass(frozen=True)
class Access:
    """The user's active roles by organisation id, read once per request or service call."""

    user_id: int | None
    roles: Mapping[int, str] = field(default_factory=dict)
    clinic_ids: frozenset[int] = frozenset()
    practice_ids: frozenset[int] = frozenset()


def access_for(user: AnyUser | None) -> Access:
    """Snapshot the user's active memberships (``principal_facts``: one query, shared with the
    MFA check, once per request); nothing for anonymous or inactive users."""
    user_id = user.pk if user is not None and is_signed_in(user) else None
    if user_id is None:
        return Access(user_id=None)
    return remember(("access", int(user_id)), lambda: _access_from(int(user_id)))


def _access_from(user_id: int) -> Access:
    rows = principal_facts(user_id).memberships
    roles: dict[int, str] = {}
    clinics: set[int] = set()
    practices: set[int] = set()
    for organization_id, kind, role in rows:
        if kind == Organization.Kind.CLINIC and role in CLINIC_ROLES:
            clinics.add(organization_id)
        elif kind == Organization.Kind.PRACTICE and role in PRACTICE_ROLES:
            practices.add(organization_id)
        else:
            continue
        roles[organization_id] = role
    return Access(
        user_id=user_id,
        roles=roles,
        clinic_ids=frozenset(clinics),
        practice_ids=frozenset(practices),
    )


def is_practice_member(access: Access, referral: Referral) -> bool:
    return referral.practice_id in access.practice_ids


def is_referrer(access: Access, referral: Referral) -> bool:
    return (
        access.user_id is not None
        and referral.provider_id == access.user_id
        and access.roles.get(referral.practice_id) == Role.PROVIDER
    )


def is_practice_staff(access: Access, referral: Referral) -> bool:
    return access.roles.get(referral.practice_id) == Role.PRACTICE_STAFF


def is_clinic_member(access: Access, referral: Referral) -> bool:
    return referral.clinic_id in access.clinic_ids


def referral_parties(access: Access, referral: Referral) -> frozenset[str]:
    """Every party the user is to this referral (empty for outsiders)."""
    parties: set[str] = set()
    if is_practice_member(access, referral):
        parties.add(PRACTICE_MEMBER)
    if is_referrer(access, referral):
        parties.add(REFERRER)
    if is_practice_staff(access, referral):
        parties.add(PRACTICE_STAFF)
    if is_clinic_member(access, referral) and referral.status not in PRACTICE_ONLY_STATES:
        clinic_role = access.roles[referral.clinic_id]
        parties.add(clinic_role)
    return frozenset(parties)


def can_view_referral(access: Access, referral: Referral) -> bool:
    """Practice members see their practice's referrals; the clinic sees them once submitted."""
    if is_practice_member(access, referral):
        return True
    return is_clinic_member(access, referral) and referral.status not in PRACTICE_ONLY_STATES


def can_edit_referral(access: Access, referral: Referral) -> bool:
    """The referrer, or practice staff on their behalf, while the referral is editable."""
    if referral.status not in EDITABLE_STATES:
        return False
    return is_referrer(access, referral) or is_practice_staff(access, referral)


def can_upload_attachment(access: Access, referral: Referral) -> bool:
    """Records are added by whoever may edit the referral, in the same states."""
    return can_edit_referral(access, referral)


def can_see_duplicates(access: Access, referral: Referral) -> bool:
    """Only the referring practice is asked "is this the same patient?"; it owns the patient."""
    return is_practice_member(access, referral)


def can_create_referral_in(access: Access, practice: Organization) -> bool:
    return practice.pk in access.practice_ids


def can_be_referring_provider(access: Access, practice: Organization) -> bool:
    """``access`` belongs to an active provider of ``practice``."""
    return access.roles.get(practice.pk) == Role.PROVIDER


def needs_sign_off(referral: Referral) -> bool:
    return referral.provider_signed_off_at is None


def consult_has_started(referral: Referral, now: datetime) -> bool:
    return referral.consult_at is not None and referral.consult_at <= now
