"""Who may see and record outcomes and reports: small pure predicates over the referral parties.

They build on ``referrals.permissions`` (a user's parties to a referral). Decisions:

- Every party to a visible referral reads its outcomes data (infusion sessions, assessments):
  the clinic's staff and the referring practice's members (read-only).
- Only the clinic's clinicians record sessions and assessments and request or sign reports
  (DESIGN.md section 1: the prescriber records infusions and assessments and signs reports).
- The clinic sees every report version; the referring practice only signed (delivered) ones, so an
  unsigned report answers 404 to practice users, exactly like a missing one.
- Only the referring provider acknowledges a report (the final one closes the referral, which
  only the referrer may do in the referral lifecycle).
"""

from __future__ import annotations

from typing import Final

from referrals.models import ReferralStatus
from referrals.permissions import (
    CLINIC_ADMIN,
    CLINICIAN,
    COORDINATOR,
    PRACTICE_MEMBER,
    REFERRER,
)

from .models import ProgressReport

S = ReferralStatus

CLINIC_PARTIES: Final = frozenset({COORDINATOR, CLINICIAN, CLINIC_ADMIN})

#: A session may be recorded once the consult is scheduled (the first infusion starts treatment).
SESSION_STATES: Final = frozenset({S.SCHEDULED, S.IN_TREATMENT})
#: Assessments start before treatment (the baseline is taken at or before the first infusion).
ASSESSMENT_STATES: Final = frozenset({S.ACCEPTED, S.SCHEDULED, S.IN_TREATMENT})
#: Reports are made while the patient is in treatment.
REPORT_STATES: Final = frozenset({S.IN_TREATMENT})


def is_clinic_party(parties: frozenset[str]) -> bool:
    return bool(parties & CLINIC_PARTIES)


def can_read_outcomes(parties: frozenset[str]) -> bool:
    return is_clinic_party(parties) or PRACTICE_MEMBER in parties


def can_record_outcomes(parties: frozenset[str]) -> bool:
    return CLINICIAN in parties


def can_request_report(parties: frozenset[str]) -> bool:
    return CLINICIAN in parties


def can_see_report(parties: frozenset[str], report: ProgressReport) -> bool:
    if is_clinic_party(parties):
        return True
    return PRACTICE_MEMBER in parties and report.is_signed


def can_sign_report(parties: frozenset[str]) -> bool:
    return CLINICIAN in parties


def can_acknowledge_report(parties: frozenset[str]) -> bool:
    return REFERRER in parties
