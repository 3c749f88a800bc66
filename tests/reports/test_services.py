"""Outcomes and report services against the database: rules, notifications, automation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from portal.accounts.models import Role
from portal.api.errors import Conflict, Forbidden, NotFound
from portal.audit.models import AuditEvent
from portal.crypto.models import EncryptedFile
from portal.notifications.models import Notification
from referrals import services as referral_services
from referrals.models import ReferralEvent
from reports import services
from reports.models import (
    Assessment,
    InfusionSession,
    OutcomeSettings,
    ProgressReport,
    ReportStatus,
)
from tests.factories import MembershipFactory, UserFactory
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.reports.helpers import (
    held_session,
    pdf_text,
    phq9_answers,
    record_course,
    report_pdf_bytes,
    session,
)

pytestmark = pytest.mark.django_db


def _second_clinician(cast: Cast) -> Any:
    other = UserFactory.create(email="second-clinician@cast.example")
    MembershipFactory.create(user=other, organization=cast.clinic, role=Role.CLINICIAN)
    return other


def test_a_safety_flag_alerts_clinicians_and_coordinators_at_once(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    other_clinician = _second_clinician(cast)

    with django_capture_on_commit_callbacks(execute=True):
        assessment = services.assessment_record(
            actor=cast.user("clinician"),
            referral=referral,
            instrument="phq9",
            answers=phq9_answers(12, item9=1),
            taken_at=timezone.now() - timedelta(minutes=1),
        )

    assert assessment.flags == ["phq9_item9"]
    alerts = Notification.objects.filter(event="assessment.safety_flag")
    # The recording clinician knows already; the other clinician and the coordinator are told.
    assert sorted(n.recipient.email for n in alerts) == [
        "coordinator@cast.example",
        "second-clinician@cast.example",
    ]
    assert {n.urgent for n in alerts} == {True}
    assert {n.link for n in alerts} == {f"/reports/referrals/{referral.public_id}/"}
    assert {n.reference for n in alerts} == {referral.number}
    # The e-mails went out at once and carry no clinical content.
    assert sorted(message.to[0] for message in mail.outbox) == [
        "coordinator@cast.example",
        "second-clinician@cast.example",
    ]
    for message in mail.outbox:
        assert referral.number in message.body
        assert "Dana" not in message.body
        assert "PHQ" not in message.body
        assert "item" not in message.body.lower()
    assert other_clinician.is_active


def test_an_assessment_without_a_flag_alerts_nobody(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    services.assessment_record(
        actor=cast.user("clinician"),
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(12),
        taken_at=timezone.now() - timedelta(minutes=1),
    )
    assert Notification.objects.count() == 0


def test_interim_reports_are_requested_after_the_third_and_sixth_infusion(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    start = timezone.localtime() - timedelta(days=20)
    versions = []
    for day in (0, 2, 4):
        services.infusion_session_record(
            actor=clinician, referral=referral, data=session(day, start)
        )
        versions.append(ProgressReport.objects.count())
    # A held session is not an infusion: it does not count towards the 6th.
    services.infusion_session_record(
        actor=clinician, referral=referral, data=held_session(6, start)
    )
    for day in (7, 9, 11):
        services.infusion_session_record(
            actor=clinician, referral=referral, data=session(day, start)
        )
        versions.append(ProgressReport.objects.count())

    assert versions == [0, 0, 1, 1, 1, 2]
    reports = list(ProgressReport.objects.order_by("version"))
    assert [(r.version, r.kind, r.trigger, r.requested_by) for r in reports] == [
        (1, "interim", "after_infusion", None),
        (2, "interim", "after_infusion", None),
    ]
    assert [r.status for r in reports] == [ReportStatus.QUEUED, ReportStatus.QUEUED]
    assert AuditEvent.objects.filter(action="report.requested", actor=None).count() == 2


def test_the_clinic_thresholds_in_force_are_stored_with_each_session(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    OutcomeSettings.objects.create(clinic=cast.clinic, bp_systolic_max=150, bp_diastolic_max=95)
    recorded = services.infusion_session_record(
        actor=cast.user("clinician"),
        referral=referral,
        data=session(0, timezone.localtime() - timedelta(days=1)),
    )
    assert (recorded.bp_systolic_max, recorded.bp_diastolic_max) == (150, 95)


def test_clinic_outcome_settings_change_the_summary_and_are_printed(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    # Stricter response: a 60 % drop (the course drops 58 %), partial from 30 %.
    OutcomeSettings.objects.create(
        clinic=cast.clinic, response_drop_percent=60, partial_response_low_percent=30
    )
    record_course(cast.user("clinician"), referral)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    generated = services.report_generate(report_id=report.public_id)

    assert generated is not None
    phq9 = generated.summary["instruments"]["phq9"]
    assert (phq9["response"], phq9["partial_response"], phq9["status"]) == (
        False,
        True,
        "partial_response",
    )
    assert phq9["time_to_response"] is None
    assert generated.summary["status"] == "partial_response"
    text = pdf_text(report_pdf_bytes(generated))
    assert "Partial response" in text
    assert "a drop of 60 % or more from baseline" in text
    assert "a drop of 30 % or more, below 60 %" in text


def test_a_report_is_requested_only_by_a_clinician_during_treatment(cast: Cast) -> None:
    in_treatment = referral_in_state(cast, "in_treatment")
    scheduled = referral_in_state(cast, "scheduled")

    with pytest.raises(Forbidden):
        services.report_request(actor=cast.user("coordinator"), referral=in_treatment, kind="final")
    with pytest.raises(NotFound):
        services.report_request(actor=cast.user("outsider"), referral=in_treatment, kind="final")
    with pytest.raises(Conflict):
        services.report_request(actor=cast.user("clinician"), referral=scheduled, kind="final")
    assert ProgressReport.objects.count() == 0
    assert list(
        AuditEvent.objects.filter(outcome="denied").values_list("action", flat=True).order_by("pk")
    ) == ["report.request", "report.request"]


def test_regenerating_makes_a_new_version_and_the_old_one_stays_readable(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)
    first = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="interim"
        ).public_id
    )
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(4),
        taken_at=timezone.now() - timedelta(minutes=1),
    )
    second = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="interim"
        ).public_id
    )

    assert first is not None
    assert second is not None
    assert second.version == first.version + 1
    assert second.input_hash != first.input_hash
    assert second.summary["instruments"]["phq9"]["latest"] == 4
    assert second.summary["instruments"]["phq9"]["remission"] is True
    first.refresh_from_db()
    # The old version is unchanged: its summary still ends at 8 and its PDF still opens.
    assert first.summary["instruments"]["phq9"]["latest"] == 8
    assert "baseline 19 -> latest 8" in pdf_text(report_pdf_bytes(first))
    assert "baseline 19 -> latest 4" in pdf_text(report_pdf_bytes(second))


def test_signing_renders_the_signed_pdf_from_the_same_inputs_and_delivers_it(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)
    report = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="interim"
        ).public_id
    )
    assert report is not None
    draft_sha = report.pdf_sha256
    # Data recorded after the report was requested does not change what is signed.
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(3),
        taken_at=timezone.now() - timedelta(minutes=1),
    )

    with django_capture_on_commit_callbacks(execute=True):
        signed = services.report_sign(
            actor=clinician, report=report, interpretation="Response after six infusions."
        )

    assert signed.pdf_sha256 == draft_sha  # the draft is kept as it was
    assert signed.signed_pdf_sha256 not in ("", draft_sha)
    assert signed.delivered_at == signed.signed_at
    text = pdf_text(report_pdf_bytes(signed))
    assert "Response after six infusions." in text
    assert "Signed by" in text
    assert "Clinician Persona" in text
    assert "baseline 19 -> latest 8" in text
    assert "DRAFT" not in text
    delivered = Notification.objects.filter(event="report.delivered")
    assert sorted(n.recipient.email for n in delivered) == ["provider@cast.example"]
    assert ReferralEvent.objects.filter(referral=referral, kind="report_signed").count() == 1
    assert any("provider@cast.example" in message.to for message in mail.outbox)


def test_a_tampered_snapshot_cannot_be_signed(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)
    report = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="interim"
        ).public_id
    )
    assert report is not None
    snapshot = report.input_snapshot
    snapshot["assessments"][2]["total"] = 27  # the baseline, made worse
    report.input_snapshot = snapshot
    report.save(update_fields=["input_snapshot"])

    with pytest.raises(services.ReportUnavailable):
        services.report_sign(actor=clinician, report=report, interpretation="Looks great.")

    report.refresh_from_db()
    assert report.signed_at is None
    assert AuditEvent.objects.filter(action="report.integrity_failed").count() == 1


def test_the_maintenance_job_requests_a_monthly_report_only_when_due(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)  # six infusions: the induction is over
    # The automatic report after the 6th infusion is the latest report.
    latest = ProgressReport.objects.order_by("-version").first()
    assert latest is not None
    now = timezone.now()

    assert services.report_request_maintenance_due(now=now) == 0  # the last report is recent
    # A month later: the data and the reports were all recorded more than 30 days ago.
    InfusionSession.objects.filter(referral=referral).update(created_at=now - timedelta(days=40))
    Assessment.objects.filter(referral=referral).update(created_at=now - timedelta(days=40))
    ProgressReport.objects.filter(referral=referral).update(created_at=now - timedelta(days=31))
    assert services.report_request_maintenance_due(now=now) == 0  # nothing new since
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(6),
        taken_at=now - timedelta(minutes=1),
    )
    assert services.report_request_maintenance_due(now=now) == 1
    made = ProgressReport.objects.order_by("-version").first()
    assert made is not None
    assert (made.trigger, made.kind, made.requested_by) == ("maintenance", "interim", None)
    assert services.report_request_maintenance_due(now=now) == 0  # just made one


def test_a_final_report_signed_after_treatment_was_completed_leaves_the_referral_alone(
    cast: Cast,
) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)
    report = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="final"
        ).public_id
    )
    assert report is not None
    referral_services.referral_complete(actor=clinician, referral=referral)

    signed = services.report_sign(actor=clinician, report=report, interpretation="Done.")
    services.report_acknowledge(actor=cast.user("provider"), report=signed)

    referral.refresh_from_db()
    assert referral.status == "closed"
    assert list(referral.events.filter(kind="completed").values_list("kind", flat=True)) == [
        "completed"
    ]


def test_a_final_report_of_a_cancelled_referral_cannot_be_signed(cast: Cast) -> None:
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    record_course(clinician, referral)
    report = services.report_generate(
        report_id=services.report_request(
            actor=clinician, referral=referral, kind="final"
        ).public_id
    )
    assert report is not None
    referral_services.referral_cancel(
        actor=cast.user("provider"), referral=referral, reason="Moved away."
    )

    with pytest.raises(Conflict):
        services.report_sign(actor=clinician, report=report, interpretation="Done.")

    report.refresh_from_db()
    assert (report.signed_at, report.signed_pdf_name) == (None, "")
    assert EncryptedFile.objects.filter(owner_id=f"{report.public_id}:signed").count() == 0
