"""Outcomes data (infusion sessions, assessments), the clinic's outcome settings, progress reports.

Clinical content a person could be recognised by or that describes their care in words (item
answers, vitals series, adverse events, reasons, the clinician's interpretation, the snapshot a
report was built from) is encrypted. Coded values the portal computes or filters on (totals,
bands, flag codes, doses, statuses, hashes) are plain columns.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.accounts.models import Organization
from portal.clinical.scoring import INSTRUMENTS, Thresholds
from portal.core.models import BaseModel
from portal.crypto.fields import EncryptedJSONField, EncryptedTextField
from referrals.models import Referral


class Instrument(models.TextChoices):
    PHQ9 = "phq9", "PHQ-9"
    GAD7 = "gad7", "GAD-7"
    QIDS_SR16 = "qids_sr16", "QIDS-SR16"
    MADRS = "madrs", "MADRS"
    CSSRS_SCREEN = "cssrs_screen", "C-SSRS screener"
    CADSS = "cadss", "CADSS"
    CADSS6 = "cadss6", "CADSS-6"


#: Instruments whose baseline, change, response and remission are computed, in report order.
OUTCOME_INSTRUMENTS: tuple[str, ...] = tuple(
    spec.id for spec in INSTRUMENTS.values() if spec.outcome_measure
)


class OutcomeSettings(BaseModel):
    """A clinic's outcome thresholds and report settings; a clinic without a row uses these
    defaults (CLINICAL.md). Every report prints the values it used."""

    clinic = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="outcome_settings",
        limit_choices_to={"kind": Organization.Kind.CLINIC},
    )
    response_drop_percent = models.PositiveSmallIntegerField(
        default=50, help_text="Response: a drop of at least this percentage from baseline."
    )
    partial_response_low_percent = models.PositiveSmallIntegerField(
        default=25, help_text="Partial response: a drop of at least this, but below response."
    )
    phq9_remission_max = models.PositiveSmallIntegerField(
        default=4, help_text="PHQ-9 remission: total at most this (4 means < 5)."
    )
    qids_remission_max = models.PositiveSmallIntegerField(
        default=5, help_text="QIDS-SR16 remission: total at most this."
    )
    madrs_remission_max = models.PositiveSmallIntegerField(
        default=10, help_text="MADRS remission: total at most this (some clinics use 9, i.e. < 10)."
    )
    baseline_window_days = models.PositiveSmallIntegerField(
        default=14, help_text="Baseline: the last score within this many days before infusion 1."
    )
    bp_systolic_max = models.PositiveSmallIntegerField(
        default=140, help_text="Pre-dose systolic BP above this is a reason to delay."
    )
    bp_diastolic_max = models.PositiveSmallIntegerField(
        default=90, help_text="Pre-dose diastolic BP above this is a reason to delay."
    )
    infusions_planned = models.PositiveSmallIntegerField(
        default=6, help_text="Infusions in the induction series (reports show completed/planned)."
    )
    primary_instrument = models.CharField(
        max_length=16,
        choices=[(i, Instrument(i).label) for i in OUTCOME_INSTRUMENTS],
        default=Instrument.PHQ9,
        help_text="The instrument of the report's bottom line.",
    )
    maintenance_report_days = models.PositiveSmallIntegerField(
        default=30,
        help_text="During maintenance, an interim report is made when the last is this old.",
    )

    class Meta:
        verbose_name_plural = "outcome settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(partial_response_low_percent__gt=0)
                & Q(partial_response_low_percent__lt=models.F("response_drop_percent"))
                & Q(response_drop_percent__lte=100),
                name="outcome_settings_response_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Outcome settings of {self.clinic}"

    def thresholds(self) -> Thresholds:
        return Thresholds(
            response_drop_percent=self.response_drop_percent,
            partial_response_low_percent=self.partial_response_low_percent,
            phq9_remission_max=self.phq9_remission_max,
            qids_remission_max=self.qids_remission_max,
            madrs_remission_max=self.madrs_remission_max,
            baseline_window_days=self.baseline_window_days,
        )


class Route(models.TextChoices):
    IV = "iv", "Intravenous (IV)"
    IM = "im", "Intramuscular (IM)"
    SC = "sc", "Subcutaneous (SC)"


class SessionStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped early"
    HELD = "held", "Held (not given)"


class InfusionSession(BaseModel):
    """One treatment session. ``number`` is its 1-based place in the referral's sessions; a held
    session (not given, e.g. pre-dose BP above the threshold) is a session but not an infusion."""

    referral = models.ForeignKey(
        Referral, on_delete=models.PROTECT, related_name="infusion_sessions"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.COMPLETED
    )
    status_reason = EncryptedTextField(blank=True, default="")
    weight_kg = models.DecimalField(max_digits=5, decimal_places=1)
    dose_mg_per_kg = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    # weight x dose, rounded to 0.1 mg; stored so the record shows what was drawn up.
    total_mg = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    duration_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    route = models.CharField(max_length=8, choices=Route.choices, default=Route.IV)
    # [{"minute", "systolic", "diastolic", "heart_rate", "spo2"}], by minute.
    vitals = EncryptedJSONField(default=list)
    cadss_peak = models.PositiveSmallIntegerField(null=True, blank=True)
    # [{"term", "severity", "onset", "resolution", "action"}]
    adverse_events = EncryptedJSONField(default=list)
    dose_change_reason = EncryptedTextField(blank=True, default="")
    # The clinic's pre-dose BP thresholds when the session was recorded.
    bp_systolic_max = models.PositiveSmallIntegerField()
    bp_diastolic_max = models.PositiveSmallIntegerField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["referral_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["referral", "number"], name="infusion_session_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=SessionStatus.values), name="infusion_session_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=SessionStatus.HELD)
                | (
                    Q(dose_mg_per_kg__isnull=False)
                    & Q(total_mg__isnull=False)
                    & Q(duration_minutes__isnull=False)
                ),
                name="infusion_session_given_has_dose",
            ),
        ]

    def __str__(self) -> str:
        return f"session {self.number} of {self.referral_id}"

    @property
    def administered(self) -> bool:
        return self.status != SessionStatus.HELD


class Assessment(BaseModel):
    """One completed questionnaire or rating, with its computed total, band and safety flags."""

    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="assessments")
    instrument = models.CharField(max_length=16, choices=Instrument.choices)
    answers = EncryptedJSONField()
    # None for the C-SSRS screener, which has a suggested level (``band``) and no total.
    total = models.PositiveSmallIntegerField(null=True, blank=True)
    band = models.CharField(max_length=32)
    flags = models.JSONField(default=list, blank=True)
    taken_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [models.Index(fields=["referral", "taken_at"], name="assessment_timeline")]
        constraints = [
            models.CheckConstraint(
                condition=Q(instrument__in=Instrument.values), name="assessment_instrument_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} of {self.referral_id}"


class ReportKind(models.TextChoices):
    INTERIM = "interim", "Interim"
    FINAL = "final", "Final"


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    GENERATING = "generating", "Generating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ReportTrigger(models.TextChoices):
    REQUESTED = "requested", "Requested by a clinician"
    AFTER_INFUSION = "after_infusion", "Automatic, after an infusion"
    MAINTENANCE = "maintenance", "Automatic, monthly during maintenance"


class ProgressReport(BaseModel):
    """An immutable, versioned snapshot of a referral's outcomes, rendered to PDF by a worker.

    Generation fills ``input_snapshot`` (the canonical inputs, encrypted), ``input_hash`` (its
    SHA-256), the summary and the draft PDF once, and marks the report ready. Signing adds the
    interpretation and a signed PDF rendered from the same snapshot; the referrer's
    acknowledgement is recorded once. A new version is a new row; old ones stay readable.
    """

    referral = models.ForeignKey(
        Referral, on_delete=models.PROTECT, related_name="progress_reports"
    )
    kind = models.CharField(max_length=8, choices=ReportKind.choices)
    version = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED, db_index=True
    )
    trigger = models.CharField(
        max_length=16, choices=ReportTrigger.choices, default=ReportTrigger.REQUESTED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Generation bookkeeping (never PHI: the reason is a fixed phrase and an exception type).
    attempts = models.PositiveSmallIntegerField(default=0)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    generation_started_at = models.DateTimeField(null=True, blank=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)

    template_version = models.CharField(max_length=16, blank=True)
    input_snapshot = EncryptedJSONField(null=True, blank=True)
    input_hash = models.CharField(max_length=64, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    pdf_name = models.CharField(max_length=255, blank=True)
    pdf_size = models.PositiveIntegerField(null=True, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)

    interpretation = EncryptedTextField(blank=True, default="")
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_pdf_name = models.CharField(max_length=255, blank=True)
    signed_pdf_size = models.PositiveIntegerField(null=True, blank=True)
    signed_pdf_sha256 = models.CharField(max_length=64, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["referral_id", "-version"]
        indexes = [
            models.Index(fields=["status", "last_enqueued_at"], name="report_redrive"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["referral", "version"], name="report_version_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=ReportKind.values), name="report_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReportStatus.values), name="report_status_valid"
            ),
            # A ready report has its inputs, their hash and its PDF.
            models.CheckConstraint(
                condition=~Q(status=ReportStatus.READY)
                | (~Q(input_hash="") & ~Q(pdf_sha256="") & ~Q(pdf_name="")),
                name="report_ready_has_pdf",
            ),
            # Only a ready report is signed, and a signed one has its signed PDF.
            models.CheckConstraint(
                condition=Q(signed_at__isnull=True)
                | (
                    Q(status=ReportStatus.READY)
                    & Q(signed_by__isnull=False)
                    & ~Q(signed_pdf_sha256="")
                ),
                name="report_signed_when_ready",
            ),
            # Only a signed (delivered) report is acknowledged.
            models.CheckConstraint(
                condition=Q(acknowledged_at__isnull=True)
                | (Q(signed_at__isnull=False) & Q(acknowledged_by__isnull=False)),
                name="report_acknowledged_when_signed",
            ),
        ]

    def __str__(self) -> str:
        return f"progress report v{self.version} of {self.referral_id}"

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None
