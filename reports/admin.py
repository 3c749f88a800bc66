"""The clinic's outcome settings in the admin (staff only, behind the same sign-in with MFA).

Only the settings: clinical rows (sessions, assessments, reports) are entered and read through
the services and selectors, which check roles and audit every change and read.
"""

from __future__ import annotations

from django.contrib import admin

from reports.models import OutcomeSettings


@admin.register(OutcomeSettings)
class OutcomeSettingsAdmin(admin.ModelAdmin[OutcomeSettings]):
    list_display = (
        "clinic",
        "response_drop_percent",
        "partial_response_low_percent",
        "phq9_remission_max",
        "baseline_window_days",
        "bp_systolic_max",
        "bp_diastolic_max",
        "infusions_planned",
    )
    fields = (
        "clinic",
        "primary_instrument",
        "response_drop_percent",
        "partial_response_low_percent",
        "phq9_remission_max",
        "qids_remission_max",
        "madrs_remission_max",
        "baseline_window_days",
        "bp_systolic_max",
        "bp_diastolic_max",
        "infusions_planned",
        "maintenance_report_days",
    )
