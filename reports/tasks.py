"""Report tasks: thin, ids only, idempotent; the work is in services.py."""

from __future__ import annotations

import logging
from typing import Any, Final

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

# A module reference: services.py imports this module back.
from reports import services

logger = logging.getLogger(__name__)

#: Errors worth trying again: the database or the file storage was briefly unavailable.
TRANSIENT_ERRORS: Final = (OperationalError, InterfaceError, OSError)
MAX_RETRIES: Final = 3
RETRY_BACKOFF_SECONDS: Final = 5
# A 6-infusion report takes tens of milliseconds; these only stop a run that is stuck.
SOFT_TIME_LIMIT_SECONDS: Final = 60
TIME_LIMIT_SECONDS: Final = 90


def retry_countdown(retries: int) -> int:
    """5 s, 10 s, 20 s."""
    return int(RETRY_BACKOFF_SECONDS * 2**retries)


@shared_task(
    bind=True,
    name="reports.generate_progress_report",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def generate_progress_report(self: Task[Any, Any], report_id: str) -> None:
    """Generate one report (by public id); a second run for the same id changes nothing."""
    try:
        services.report_generate(report_id=report_id)
    except SoftTimeLimitExceeded:
        services.report_mark_failed(
            report_id=report_id, reason="Generation exceeded its time limit."
        )
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= MAX_RETRIES:
            services.report_mark_failed(
                report_id=report_id,
                reason=f"Gave up after {MAX_RETRIES + 1} tries ({type(error).__name__}).",
            )
            return
        logger.warning(
            "reports.generation_retry",
            extra={"report": report_id, "error": type(error).__name__},
        )
        raise self.retry(exc=error, countdown=retry_countdown(self.request.retries)) from None
    except Exception as error:
        # Not transient: trying again gives the same result. Only the exception type is logged
        # (a message could quote clinical data).
        logger.error(
            "reports.generation_failed", extra={"report": report_id, "error": type(error).__name__}
        )
        services.report_mark_failed(
            report_id=report_id, reason=f"Generation failed ({type(error).__name__})."
        )


@shared_task(name="reports.redrive_progress_reports", ignore_result=True)
def redrive_progress_reports() -> None:
    """Periodic: enqueue again the reports that were never picked up or lost their worker."""
    services.report_generation_redrive()


@shared_task(name="reports.request_maintenance_reports", ignore_result=True)
def request_maintenance_reports() -> None:
    """Daily: request the monthly interim report of patients in maintenance."""
    services.report_request_maintenance_due()
