"""Report generation as a task: enqueued on commit, idempotent, bounded retries, re-drive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from portal.celery import app as celery_app
from portal.crypto.models import EncryptedFile
from portal.notifications.models import Notification
from referrals.models import Referral, ReferralEvent
from reports import services, tasks
from reports.models import ProgressReport, ReportStatus
from tests.conftest import wait_for
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.reports.helpers import record_course

pytestmark = pytest.mark.django_db


def _course(cast: Cast) -> Referral:
    referral = referral_in_state(cast, "in_treatment")
    record_course(cast.user("clinician"), referral)
    # The automatic reports (after infusions 3 and 6) are not under test here.
    ProgressReport.objects.all().delete()
    return referral


def _files_on_disk() -> int:
    folder = settings.MEDIA_ROOT / "encrypted" / services.REPORT_FILE_PURPOSE
    return len(list(folder.iterdir())) if folder.exists() else 0


def test_a_requested_report_is_generated_once_the_request_commits(
    cast: Cast, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    referral = _course(cast)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = services.report_request(
            actor=cast.user("clinician"), referral=referral, kind="interim"
        )
        assert ProgressReport.objects.get(pk=report.pk).status == ReportStatus.QUEUED

    assert len(callbacks) >= 1
    report.refresh_from_db()
    assert (report.status, report.attempts) == (ReportStatus.READY, 1)
    assert ReferralEvent.objects.filter(referral=referral, kind="report_ready").count() == 1
    ready = Notification.objects.get(event="report.ready")
    assert (ready.recipient, ready.link) == (
        cast.user("clinician"),
        f"/reports/{report.public_id}/",
    )


def test_the_task_run_twice_stores_one_pdf(cast: Cast) -> None:
    referral = _course(cast)
    report = services.report_request(actor=cast.user("clinician"), referral=referral, kind="final")

    tasks.generate_progress_report.apply(args=(str(report.public_id),))
    first = ProgressReport.objects.get(pk=report.pk)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))
    second = ProgressReport.objects.get(pk=report.pk)

    assert first.status == second.status == ReportStatus.READY
    assert (second.pdf_name, second.pdf_sha256, second.attempts) == (
        first.pdf_name,
        first.pdf_sha256,
        1,
    )
    assert EncryptedFile.objects.filter(owner_id=str(report.public_id)).count() == 1
    assert _files_on_disk() == 1
    assert ReferralEvent.objects.filter(kind="report_ready").count() == 1


def test_a_broker_that_is_down_does_not_fail_the_request_and_the_redrive_sends_it_later(
    cast: Cast,
    django_capture_on_commit_callbacks: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    referral = _course(cast)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise BrokerDown("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.generate_progress_report, "apply_async", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            report = services.report_request(
                actor=cast.user("clinician"), referral=referral, kind="interim"
            )
        report.refresh_from_db()
        assert report.status == ReportStatus.QUEUED
        # Still down a minute later: nothing is due yet, nothing is lost.
        assert services.report_generation_redrive(now=timezone.now()) == 0

    later = timezone.now() + services.REDRIVE_QUEUED_AFTER + timedelta(seconds=1)
    assert services.report_generation_redrive(now=later) == 1
    report.refresh_from_db()
    assert report.status == ReportStatus.READY
    assert services.report_generation_redrive(now=later + timedelta(hours=1)) == 0


def test_a_report_whose_worker_died_is_taken_over_by_the_redrive(cast: Cast) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    long_ago = timezone.now() - services.GENERATING_STALE_AFTER - timedelta(minutes=1)
    ProgressReport.objects.filter(pk=report.pk).update(
        status=ReportStatus.GENERATING,
        attempts=1,
        generation_started_at=long_ago,
        last_enqueued_at=long_ago,
    )

    assert services.report_generation_redrive() == 1

    report.refresh_from_db()
    assert (report.status, report.attempts) == (ReportStatus.READY, 2)
    assert EncryptedFile.objects.filter(owner_id=str(report.public_id)).count() == 1


def test_a_permanent_error_fails_the_report_with_a_reason_and_leaves_no_file(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )

    def broken(*args: Any) -> bytes:
        raise ValueError("Dana Example's chart could not be drawn")

    monkeypatch.setattr(services, "render_pdf", broken)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    report.refresh_from_db()
    assert (report.status, report.failure_reason) == (
        ReportStatus.FAILED,
        "Generation failed (ValueError).",
    )
    assert (report.pdf_name, report.input_hash) == ("", "")
    assert _files_on_disk() == 0
    failed = Notification.objects.get(event="report.failed")
    assert failed.recipient == cast.user("clinician")
    # A failed report stays failed: running again changes nothing (a new version is requested).
    tasks.generate_progress_report.apply(args=(str(report.public_id),))
    assert ProgressReport.objects.get(pk=report.pk).attempts == 1


def test_a_file_written_before_a_later_failure_is_removed(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )

    def timeline_down(**kwargs: Any) -> None:
        raise RuntimeError("timeline unavailable")

    # The timeline event is recorded after the PDF is stored, in the same transaction.
    monkeypatch.setattr(services.referral_services, "referral_event_record", timeline_down)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    assert ProgressReport.objects.get(pk=report.pk).status == ReportStatus.FAILED
    assert _files_on_disk() == 0
    assert EncryptedFile.objects.count() == 0


@pytest.fixture
def retries_run_in_process() -> Iterator[None]:
    """As on a worker, a retry is a new run: eager mode would otherwise raise Retry at once."""
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


@pytest.mark.usefixtures("retries_run_in_process")
def test_transient_errors_are_retried_a_bounded_number_of_times(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    calls: list[int] = []

    def database_gone(*args: Any) -> dict[str, Any]:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "build_snapshot", database_gone)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    report.refresh_from_db()
    assert len(calls) == tasks.MAX_RETRIES + 1 == 4
    assert report.attempts == 4
    assert (report.status, report.failure_reason) == (
        ReportStatus.FAILED,
        "Gave up after 4 tries (OperationalError).",
    )


@pytest.mark.usefixtures("retries_run_in_process")
def test_a_transient_error_that_clears_ends_in_one_ready_report(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    real = services.build_snapshot
    calls: list[int] = []

    def flaky(*args: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(*args)

    monkeypatch.setattr(services, "build_snapshot", flaky)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    report.refresh_from_db()
    assert (report.status, report.attempts, len(calls)) == (ReportStatus.READY, 2, 2)
    assert _files_on_disk() == 1


def test_the_soft_time_limit_fails_the_report(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )

    def too_slow(*args: Any) -> bytes:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "render_pdf", too_slow)
    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    report.refresh_from_db()
    assert (report.status, report.failure_reason) == (
        ReportStatus.FAILED,
        "Generation exceeded its time limit.",
    )
    options = tasks.generate_progress_report
    assert (options.soft_time_limit, options.time_limit, options.acks_late) == (60, 90, True)
    assert options.reject_on_worker_lost is True


def test_a_report_that_keeps_killing_its_worker_is_given_up(cast: Cast) -> None:
    referral = _course(cast)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    ProgressReport.objects.filter(pk=report.pk).update(
        status=ReportStatus.GENERATING, attempts=services.MAX_GENERATION_ATTEMPTS
    )

    tasks.generate_progress_report.apply(args=(str(report.public_id),))

    report.refresh_from_db()
    assert (report.status, report.failure_reason) == (
        ReportStatus.FAILED,
        "Gave up after 5 attempts.",
    )


def test_an_unknown_report_id_is_ignored(cast: Cast) -> None:
    assert services.report_generate(report_id="not-a-uuid") is None
    assert services.report_generate(report_id="6f1c1c0e-9a63-4c4f-8f59-1b0c2a3d4e5f") is None


@pytest.mark.django_db(transaction=True)
def test_a_second_run_during_the_first_waits_and_stores_nothing(
    cast: Cast, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL: while the first run holds the report (row lock, transaction open), a second
    run (a redelivered message) waits for the lock, then finds the report ready."""
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL (PostgreSQL): SQLite has no row locks")
    referral = _course(cast)
    # Not generated on commit: the two runs below are the only ones.
    monkeypatch.setattr(services, "enqueue_report_generation", lambda report_id: True)
    report = services.report_request(
        actor=cast.user("clinician"), referral=referral, kind="interim"
    )
    assert ProgressReport.objects.get(pk=report.pk).status == ReportStatus.QUEUED
    # (In this test the automatic reports of the course were generated on commit.)
    files_before = _files_on_disk()
    events_before = ReferralEvent.objects.filter(kind="report_ready").count()
    settings.REPORTS_GENERATION_PAUSE_SECONDS = 2.0
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = services.report_generate(report_id=report.public_id)
        except BaseException as error:  # surfaced below
            results[name] = error
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    # The first run has claimed the report and is pausing inside its locked transaction.
    assert wait_for(
        lambda: ProgressReport.objects.get(pk=report.pk).status == ReportStatus.GENERATING,
        timeout=10,
    )
    second = threading.Thread(target=run, args=("second",))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)

    assert isinstance(results["first"], ProgressReport)
    assert isinstance(results["second"], ProgressReport)
    assert results["second"].status == ReportStatus.READY
    assert results["second"].pdf_sha256 == results["first"].pdf_sha256
    report.refresh_from_db()
    assert (report.status, report.attempts) == (ReportStatus.READY, 1)
    assert EncryptedFile.objects.filter(owner_id=str(report.public_id)).count() == 1
    assert _files_on_disk() == files_before + 1
    assert ReferralEvent.objects.filter(kind="report_ready").count() == events_before + 1
