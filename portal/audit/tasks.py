"""Periodic audit jobs (scheduled in portal/schedule.py): seal often, verify nightly."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from portal.audit.sealing import audit_seal
from portal.audit.selectors import audit_alert_recipients
from portal.audit.services import security_event_record
from portal.audit.verification import audit_verify
from portal.notifications.services import notify

logger = logging.getLogger("portal.audit")

VERIFY_FAILED = "audit.verify_failed"


# expires: a run that waited behind a backlog is pointless once the next one is due.
@shared_task(name="portal.audit.seal", ignore_result=True, expires=30)
def audit_seal_task() -> None:
    audit_seal()


@shared_task(name="portal.audit.verify", ignore_result=True, soft_time_limit=3300, time_limit=3600)
def audit_verify_task() -> None:
    """Verify the chain; on failure record a security event, log it and alert the clinic admins.

    The alert is an urgent notification (in-app and e-mail) with no detail in it: a reference
    "AU-<year>-<day of year>" for the night's check and a link to the audit trail page; the
    finding itself is in the log, the security event and ``manage.py audit_verify``.
    """
    report = audit_verify()
    if report.ok:
        logger.info("audit.verified", extra={"checked": report.checked})
        return
    failure = report.failure
    details: dict[str, str | int | bool | None] = {
        "kind": failure.kind if failure else "unsealed",
        "sequence": failure.sequence if failure else None,
        "unsealed": report.unsealed_count,
    }
    logger.error(VERIFY_FAILED, extra=details)
    security_event_record(action=VERIFY_FAILED, details=details)
    today = timezone.localdate()
    with transaction.atomic():
        notify(
            recipients=audit_alert_recipients(),
            event=VERIFY_FAILED,
            reference=f"AU-{today.year:04d}-{today.timetuple().tm_yday:05d}",
            link=reverse("audit:event-list"),
            urgent=True,
        )
