"""Every read of outcomes and reports for a user, scoped to what that user may see.

Referrals come from ``referrals.selectors.referral_get_for_user`` (404 for missing and not-yours,
the denial audited). A report the user may not see (another practice's, or not yet signed for a
practice user) raises the same ``NotFound`` as a missing one. Reads that return clinical detail
write an ``audit_phi_read`` event first; if it cannot be written nothing is returned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import QuerySet

from portal.accounts.models import User
from portal.accounts.permissions import AnyUser
from portal.api.errors import Conflict, NotFound
from portal.audit.services import audit_denied, audit_phi_read
from portal.crypto.storage import EncryptedFileStream, open_encrypted_file
from referrals.models import Referral
from referrals.permissions import access_for, can_view_referral, referral_parties
from reports import permissions
from reports.models import Assessment, InfusionSession, ProgressReport
from reports.services import REPORT_FILE_PURPOSE, signed_file_owner


def _as_uuid(public_id: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(public_id, uuid.UUID):
        return public_id
    try:
        return uuid.UUID(str(public_id))
    except ValueError:
        return None


def _audit_read(user: AnyUser, referral: Referral, view: str) -> None:
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="referral",
        object_id=referral.public_id,
        details={"referral": str(referral.public_id), "view": view},
    )


def referral_parties_for_user(*, user: AnyUser, referral: Referral) -> frozenset[str]:
    return referral_parties(access_for(user), referral)


def infusion_session_list_for_user(
    *, user: AnyUser, referral: Referral
) -> QuerySet[InfusionSession]:
    """The referral's sessions in order (``referral`` from a selector for this user); vitals and
    adverse events are clinical detail, so the read is audited."""
    _audit_read(user, referral, "infusions")
    return referral.infusion_sessions.select_related("recorded_by").order_by("number")


def assessment_list_for_user(*, user: AnyUser, referral: Referral) -> QuerySet[Assessment]:
    """The referral's assessments, oldest first; item answers are clinical detail (audited)."""
    _audit_read(user, referral, "assessments")
    return referral.assessments.select_related("recorded_by").order_by("taken_at", "id")


def report_list_for_user(*, user: AnyUser, referral: Referral) -> QuerySet[ProgressReport]:
    """The referral's reports, newest version first: every version for the clinic, only signed
    ones for the referring practice. The rows carry no PHI (statuses, versions, dates)."""
    parties = referral_parties_for_user(user=user, referral=referral)
    reports = referral.progress_reports.select_related("signed_by", "acknowledged_by")
    if not permissions.is_clinic_party(parties):
        reports = reports.filter(signed_at__isnull=False)
    return reports.order_by("-version")


def report_get_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> ProgressReport:
    """One report the user may see (no PHI read is audited here)."""
    parsed = _as_uuid(public_id)
    report = None
    if parsed is not None:
        report = (
            ProgressReport.objects.select_related(
                "referral__practice",
                "referral__clinic",
                "referral__provider",
                "referral__patient",
                "requested_by",
                "signed_by",
                "acknowledged_by",
            )
            .filter(public_id=parsed)
            .first()
        )
    if report is not None:
        access = access_for(user)
        if can_view_referral(access, report.referral) and permissions.can_see_report(
            referral_parties(access, report.referral), report
        ):
            return report
        audit_denied(
            actor=user if isinstance(user, User) else None,
            action="progress_report.read",
            object_type="progress_report",
            object_id=report.public_id,
        )
    raise NotFound()


def report_detail_for_user(*, user: AnyUser, public_id: uuid.UUID | str) -> ProgressReport:
    """The report with its interpretation (clinical text): the read is audited first."""
    report = report_get_for_user(user=user, public_id=public_id)
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="progress_report",
        object_id=report.public_id,
        details={"referral": str(report.referral.public_id), "view": "detail"},
    )
    return report


@dataclass(frozen=True)
class ReportFile:
    name: str
    size: int
    sha256: str
    owner_id: str
    signed: bool


def report_file(report: ProgressReport) -> ReportFile | None:
    """The PDF a reader gets: the signed one once signed, the draft before (None if none yet)."""
    if report.is_signed:
        return ReportFile(
            name=report.signed_pdf_name,
            size=report.signed_pdf_size or 0,
            sha256=report.signed_pdf_sha256,
            owner_id=signed_file_owner(report),
            signed=True,
        )
    if report.pdf_name:
        return ReportFile(
            name=report.pdf_name,
            size=report.pdf_size or 0,
            sha256=report.pdf_sha256,
            owner_id=str(report.public_id),
            signed=False,
        )
    return None


def report_pdf_open_for_user(
    *, user: AnyUser, public_id: uuid.UUID | str
) -> tuple[ProgressReport, ReportFile, EncryptedFileStream]:
    """The report's PDF, decrypted and checked against its stored SHA-256 (failing closed:
    ``DecryptionError`` / ``EncryptedFileMissing``); the download is audited first.
    Conflict (409) when the report has no PDF yet."""
    report = report_get_for_user(user=user, public_id=public_id)
    found = report_file(report)
    if found is None:
        raise Conflict("The report is not ready yet.", code="report_not_ready")
    audit_phi_read(
        actor=user,  # type: ignore[arg-type]
        object_type="progress_report",
        object_id=report.public_id,
        details={
            "referral": str(report.referral.public_id),
            "view": "pdf",
            "signed": found.signed,
        },
    )
    chunks = open_encrypted_file(
        found.name,
        purpose=REPORT_FILE_PURPOSE,
        owner_id=found.owner_id,
        expected_sha256=found.sha256,
    )
    return report, found, chunks
