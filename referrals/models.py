"""Patients, referrals, prior trials, the timeline, attachments and the clinic's referral settings.

PHI (patient identifiers and contact data, clinical free text, item answers, insurance, the
original names of uploaded files, free-text notes on the timeline) is stored encrypted; only
coded values the portal filters or computes on (status, urgency, dates, counts) are plain columns.
Encrypted fields cannot be filtered: duplicate patients are found through ``identity_index``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.accounts.models import Organization
from portal.core.models import BaseModel
from portal.crypto.fields import EncryptedJSONField, EncryptedTextField


class ReferralStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    IN_REVIEW = "in_review", "In review"
    INFO_REQUESTED = "info_requested", "Information requested"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    SCHEDULED = "scheduled", "Scheduled"
    IN_TREATMENT = "in_treatment", "In treatment"
    COMPLETED = "completed", "Completed"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    SIGNED_OFF = "signed_off", "Signed off by the provider"
    SUBMITTED = "submitted", "Submitted"
    REVIEWED = "reviewed", "Picked up for review"
    INFO_REQUESTED = "info_requested", "Information requested"
    ANSWERED = "answered", "Information provided"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    SCHEDULED = "scheduled", "Consult scheduled"
    NO_SHOW = "no_show", "Patient did not attend the consult"
    TREATMENT_STARTED = "treatment_started", "Treatment started"
    COMPLETED = "completed", "Treatment completed"
    CLOSED = "closed", "Outcome acknowledged"
    CANCELLED = "cancelled", "Cancelled"
    ATTACHMENT_ADDED = "attachment_added", "Attachment added"
    URGENT_ALERT = "urgent_alert", "Urgent: active suicidal intent reported"
    OVERDUE = "overdue", "Triage overdue"
    # Recorded by the reports app through ``referral_event_record`` (not state changes).
    REPORT_READY = "report_ready", "Progress report ready for clinician review"
    REPORT_SIGNED = "report_signed", "Progress report signed and delivered"


class Sex(models.TextChoices):
    """FHIR AdministrativeGender, so the FHIR view needs no translation table."""

    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class Adherence(models.TextChoices):
    GOOD = "good", "Good"
    PARTIAL = "partial", "Partial"
    POOR = "poor", "Poor"


class TrialOutcome(models.TextChoices):
    NO_RESPONSE = "no_response", "No response"
    PARTIAL_RESPONSE = "partial_response", "Partial response"
    RESPONSE = "response", "Response"
    INTOLERANCE = "intolerance", "Intolerance"


#: The contraindication checklist (DESIGN.md section 6), in display order.
CONTRAINDICATION_KEYS: tuple[str, ...] = (
    "psychosis",
    "substance_use_disorder",
    "uncontrolled_hypertension",
    "vascular_aneurysm_or_avm",
    "pregnancy",
    "ketamine_hypersensitivity",
)


class ClinicSettings(BaseModel):
    """Referral settings of one clinic; a clinic without a row uses these defaults."""

    clinic = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="referral_settings",
        limit_choices_to={"kind": Organization.Kind.CLINIC},
    )
    triage_business_days = models.PositiveSmallIntegerField(
        default=2, help_text="Triage is due this many business days (Mon-Fri) after submission."
    )
    adequate_trial_weeks = models.PositiveSmallIntegerField(
        default=4, help_text="Weeks at a therapeutic dose for a trial to count as adequate."
    )

    class Meta:
        verbose_name_plural = "clinic settings"

    def __str__(self) -> str:
        return f"Referral settings of {self.clinic}"


class Patient(BaseModel):
    """A patient of a referring practice. Every identifier is encrypted at rest."""

    practice = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="patients")
    given_name = EncryptedTextField(blank=True, default="")
    family_name = EncryptedTextField(blank=True, default="")
    birth_date = EncryptedTextField(blank=True, default="", help_text="YYYY-MM-DD")
    sex = EncryptedTextField(blank=True, default="", choices=Sex.choices)
    phone = EncryptedTextField(blank=True, default="")
    email = EncryptedTextField(blank=True, default="")
    # HMAC of normalised given name, family name and birth date: equal patients have equal
    # indexes, so a practice can be asked "is this the same patient?" without decrypting rows.
    identity_index = models.CharField(max_length=64, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"patient {self.public_id}"


class Referral(BaseModel):
    """A referral from a practice's provider to the clinic, and its place in the lifecycle."""

    number = models.CharField(max_length=16, unique=True, editable=False)
    practice = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="referrals_sent"
    )
    clinic = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="referrals_received"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="referrals")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referrals_as_provider"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referrals_created"
    )
    status = models.CharField(
        max_length=16, choices=ReferralStatus.choices, default=ReferralStatus.DRAFT, db_index=True
    )
    urgent = models.BooleanField(default=False)

    # Clinical content (DESIGN.md section 4).
    reason = EncryptedTextField(blank=True, default="")
    diagnosis_codes = EncryptedJSONField(default=list)
    episode_months = models.PositiveSmallIntegerField(null=True, blank=True)
    current_medications = EncryptedTextField(blank=True, default="")
    allergies = EncryptedTextField(blank=True, default="")
    office_bp_systolic = models.PositiveSmallIntegerField(null=True, blank=True)
    office_bp_diastolic = models.PositiveSmallIntegerField(null=True, blank=True)
    office_heart_rate = models.PositiveSmallIntegerField(null=True, blank=True)
    # Nine item answers (0-3); ``None`` for an item not answered yet in a draft.
    phq9_answers = EncryptedJSONField(default=list)
    # The six booleans of CONTRAINDICATION_KEYS; a key missing from a draft is unanswered.
    contraindications = EncryptedJSONField(default=dict)
    suicidal_intent = models.BooleanField(default=False)
    # {"payer", "member_id", "group_number"}
    insurance = EncryptedJSONField(default=dict)
    consent_attested = models.BooleanField(default=False)

    # Lifecycle data.
    provider_signed_off_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    triage_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    overdue_flagged_at = models.DateTimeField(null=True, blank=True)
    decline_reason = EncryptedTextField(blank=True, default="")
    decline_advice = EncryptedTextField(blank=True, default="")
    consult_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = EncryptedTextField(blank=True, default="")
    legal_hold = models.BooleanField(
        default=False, help_text="Keeps the referral's messages beyond the retention period."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["practice", "-created_at"], name="referral_practice_created"),
            models.Index(fields=["clinic", "status", "-created_at"], name="referral_clinic_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ReferralStatus.values), name="referral_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class ReferralNumberSequence(models.Model):
    """The last referral number handed out in a year; its row is locked while allocating."""

    year = models.PositiveSmallIntegerField(unique=True)
    last_value = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_value}"


class PriorTrial(BaseModel):
    """One antidepressant trial in the current episode, as reported by the referrer."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="prior_trials")
    position = models.PositiveSmallIntegerField(default=0)
    drug = EncryptedTextField(blank=True, default="")
    max_daily_dose_mg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    weeks_at_dose = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    adherence = models.CharField(max_length=16, choices=Adherence.choices, blank=True)
    outcome = models.CharField(max_length=32, choices=TrialOutcome.choices, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"trial {self.position + 1} of {self.referral}"


class ReferralEvent(BaseModel):
    """One entry of a referral's timeline. ``note`` carries free text (a question, an answer, a
    reason) and is encrypted."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for events recorded by the system (e.g. an overdue flag).",
    )
    from_status = models.CharField(max_length=16, choices=ReferralStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=ReferralStatus.choices, blank=True)
    note = EncryptedTextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["referral", "created_at"], name="referral_event_timeline")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.referral_id}"


class Attachment(BaseModel):
    """A file uploaded to a referral, stored encrypted; only its hash and metadata are plain."""

    class ScanStatus(models.TextChoices):
        PASSED = "passed", "Passed the malware scan hook"

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="attachments")
    stored_name = models.CharField(max_length=255, unique=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100)
    original_name = EncryptedTextField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Uploads the scan hook rejects are never stored, so every stored row has passed it.
    scan_status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.PASSED
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"attachment {self.public_id}"
