"""Every periodic job, declared in one place (settings.CELERY_BEAT_SCHEDULE points here).

Add an entry per job: {"task": "<registered task name>", "schedule": seconds or crontab(...)}.
Tasks take ids only, so periodic ones take no arguments at all.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # The notification outbox: enqueue again what was recorded but never picked up (broker down).
    "notifications-redrive-pending-deliveries": {
        "task": "notifications.redrive_pending_deliveries",
        "schedule": 60.0,
    },
    # One summary e-mail a day, in the clinic's time zone, for users who chose the daily digest.
    "notifications-send-daily-digests": {
        "task": "notifications.send_daily_digests",
        "schedule": crontab(hour=7, minute=0),
    },
    # Links committed audit events into the hash chain, off the request path.
    "audit-seal": {"task": "portal.audit.seal", "schedule": 10.0},
    # Walks the whole chain nightly and alerts the ADMINS on failure.
    "audit-verify": {"task": "portal.audit.verify", "schedule": crontab(hour=3, minute=17)},
    # Tells the coordinators about referrals whose triage is overdue (once per referral).
    "referrals-flag-overdue": {"task": "referrals.flag_overdue_referrals", "schedule": 900.0},
    # Progress reports queued but never picked up (broker down) or whose worker died: enqueue again.
    "reports-redrive": {"task": "reports.redrive_progress_reports", "schedule": 120.0},
    # The monthly interim report of patients in maintenance, requested once a day when due.
    "reports-maintenance": {
        "task": "reports.request_maintenance_reports",
        "schedule": crontab(hour=6, minute=5),
    },
    # New messages whose notification task the broker lost: notify their threads now.
    "messaging-notify-pending": {"task": "messaging.notify_pending", "schedule": 60.0},
    # Tells the coordinators about practice messages unread at the clinic for 24 hours (once each).
    "messaging-escalate-unread": {"task": "messaging.escalate_unread", "schedule": 900.0},
    # Archives messages past the clinic's retention, then purges expired archives; a legal hold
    # on the referral keeps both.
    "messaging-retention": {
        "task": "messaging.apply_retention",
        "schedule": crontab(hour=2, minute=41),
    },
}
