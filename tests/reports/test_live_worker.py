"""Report generation on a real Celery worker over Redis, against PostgreSQL.

The first test generates a report end to end. The second kills the worker (SIGKILL) while it
holds a report it is generating, starts another worker on the same queue, and shows that the
message is redelivered (acks_late; Redis restores unacknowledged messages after the visibility
timeout) and that exactly one ready report with one stored PDF comes out.
"""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from portal.crypto.models import EncryptedFile
from referrals.models import ReferralEvent
from reports import services
from reports.models import ProgressReport, ReportStatus
from tests.conftest import StartLiveWorker, wait_for
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.reports.helpers import pdf_text, phq9_answers, record_course, report_pdf_bytes, session
from tests.reports.test_summary import EXPECTED_SUMMARY

pytestmark = pytest.mark.live_worker


def _status(report: ProgressReport) -> str:
    report.refresh_from_db()
    return report.status


def test_a_live_worker_generates_a_report_end_to_end(
    cast: Cast, start_live_worker: StartLiveWorker
) -> None:
    worker = start_live_worker()
    referral = referral_in_state(cast, "in_treatment")
    # The course requests reports after infusions 3 and 6: the worker makes those too.
    record_course(cast.user("clinician"), referral)

    report = services.report_request(actor=cast.user("clinician"), referral=referral, kind="final")

    assert wait_for(lambda: _status(report) == ReportStatus.READY, timeout=60), worker.log()
    assert report.summary == EXPECTED_SUMMARY
    text = pdf_text(report_pdf_bytes(report))
    assert "Dana Example" in text
    assert "baseline 19 -> latest 8" in text
    assert wait_for(
        lambda: set(ProgressReport.objects.values_list("status", flat=True)) == {"ready"},
        timeout=60,
    ), worker.log()
    assert ProgressReport.objects.count() == 3
    assert "reports.generate_progress_report" in worker.log()
    assert wait_for(lambda: "succeeded" in worker.log(), timeout=30), worker.log()


def test_a_worker_killed_mid_report_leaves_exactly_one_ready_report(
    cast: Cast, start_live_worker: StartLiveWorker
) -> None:
    # The first worker holds the report (row lock taken, transaction open) for 60 s.
    first = start_live_worker(env={"REPORTS_GENERATION_PAUSE_SECONDS": "60"})
    referral = referral_in_state(cast, "in_treatment")
    clinician = cast.user("clinician")
    start = timezone.localtime() - timedelta(days=5)
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(20),
        taken_at=start - timedelta(days=1),
    )
    services.infusion_session_record(actor=clinician, referral=referral, data=session(0, start))
    services.assessment_record(
        actor=clinician,
        referral=referral,
        instrument="phq9",
        answers=phq9_answers(12),
        taken_at=start + timedelta(days=2),
    )

    report = services.report_request(actor=clinician, referral=referral, kind="interim")
    assert wait_for(lambda: _status(report) == ReportStatus.GENERATING, timeout=60), first.log()
    assert wait_for(lambda: "generate_progress_report" in first.log(), timeout=10)

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    assert first.process.returncode == -signal.SIGKILL

    report.refresh_from_db()
    assert (report.status, report.attempts, report.pdf_name) == (ReportStatus.GENERATING, 1, "")
    assert not EncryptedFile.objects.filter(owner_id=str(report.public_id)).exists()

    # A new worker on the same queue; Redis gives the unacknowledged message back after the
    # visibility timeout (3 s here), and the new worker takes the report over.
    second = start_live_worker(
        env={"CELERY_VISIBILITY_TIMEOUT": "3", "CELERY_UNACKED_RESTORE_INTERVAL": "1"},
        queue=first.queue,
    )
    assert wait_for(lambda: _status(report) == ReportStatus.READY, timeout=90), second.log()

    assert report.attempts == 2
    assert list(
        ProgressReport.objects.filter(referral=referral).values_list("status", flat=True)
    ) == [ReportStatus.READY]
    assert EncryptedFile.objects.filter(owner_id=str(report.public_id)).count() == 1
    folder = settings.MEDIA_ROOT / "encrypted" / services.REPORT_FILE_PURPOSE
    assert len(list(folder.iterdir())) == 1
    assert ReferralEvent.objects.filter(referral=referral, kind="report_ready").count() == 1
    assert report.summary["instruments"]["phq9"]["latest"] == 12
    # The worker logs the task's success after the task's own transaction has committed.
    assert wait_for(lambda: "succeeded" in second.log(), timeout=30), second.log()
