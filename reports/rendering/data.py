"""Plain, frozen input records for the report renderer.

Nothing here knows about Django: the report service maps its models onto these records, and the
renderer turns them into bytes. Every value is already decided (status, change, thresholds): the
renderer prints, it never computes clinical results or writes clinical text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, NamedTuple

ReportKind = Literal["interim", "final"]
OutcomeStatus = Literal["remission", "response", "partial_response", "no_response", "undetermined"]

REPORT_KINDS: tuple[str, ...] = ("interim", "final")
OUTCOME_STATUSES: tuple[str, ...] = (
    "remission",
    "response",
    "partial_response",
    "no_response",
    "undetermined",
)

STATUS_LABELS: dict[str, str] = {
    "remission": "Remission",
    "response": "Response",
    "partial_response": "Partial response",
    "no_response": "No response",
    "undetermined": "Undetermined",
}

DEFAULT_CONFIDENTIALITY_NOTICE = (
    "CONFIDENTIAL: contains protected health information for the treating and referring "
    "clinicians only. If you received this in error, do not read, copy or forward it; notify the "
    "sending clinic through the portal and destroy all copies."
)

DEFAULT_HOW_TO_REPLY = (
    "Reply in the secure message thread attached to this report in the referral portal. "
    "Do not send patient information by email: portal email notifications carry no patient "
    "details, only a link to sign in."
)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class ScoreBand(NamedTuple):
    """A severity band, inclusive on both ends: ``ScoreBand(10, 14, "moderate")``.

    A plain ``(low, high, label)`` tuple works wherever a ScoreBand is expected.
    """

    low: int
    high: int
    label: str


@dataclass(frozen=True, slots=True)
class InstrumentSeries:
    """All scores of one instrument in the report period, oldest first."""

    instrument_id: str  # e.g. "phq9"
    display_name: str  # e.g. "PHQ-9"
    max_score: int
    bands: tuple[tuple[int, int, str], ...]  # (low, high, label); ScoreBand fits
    remission_line: float | None = None  # score at which the remission line is drawn
    remission_label: str = ""  # e.g. "Remission < 5"; derived from remission_line when empty
    points: tuple[tuple[datetime, int], ...] = ()

    def __post_init__(self) -> None:
        _require(self.max_score > 0, f"{self.display_name}: max_score must be positive")
        for low, high, _label in self.bands:
            _require(
                0 <= low <= high <= self.max_score,
                f"{self.display_name}: band {low}-{high} outside 0-{self.max_score}",
            )
        if self.remission_line is not None:
            _require(
                0 <= self.remission_line <= self.max_score,
                f"{self.display_name}: remission line outside 0-{self.max_score}",
            )
        for when, score in self.points:
            _require(
                0 <= score <= self.max_score,
                f"{self.display_name}: score {score} on {when:%Y-%m-%d} outside 0-{self.max_score}",
            )

    def band_for(self, score: int) -> str:
        for low, high, label in self.bands:
            if low <= score <= high:
                return label
        return ""

    @property
    def remission_text(self) -> str:
        if self.remission_line is None:
            return ""
        if self.remission_label:
            return self.remission_label
        return f"Remission line {self.remission_line:g}"


@dataclass(frozen=True, slots=True)
class InfusionRow:
    """One infusion session: dosing (treatment course) and vitals/tolerability (safety)."""

    date: date
    weight_kg: float | None = None
    mg_per_kg: float | None = None
    total_mg: float | None = None
    duration_min: int | None = None
    pre_systolic: int | None = None
    pre_diastolic: int | None = None
    peak_systolic: int | None = None
    peak_diastolic: int | None = None
    post_systolic: int | None = None
    post_diastolic: int | None = None
    pre_hr: int | None = None
    peak_hr: int | None = None
    post_hr: int | None = None
    lowest_spo2: int | None = None
    cadss_peak: int | None = None
    adverse_events: str = ""  # already summarised by the clinic, e.g. "Nausea (mild), resolved"
    dose_change_note: str = ""  # e.g. "Increased to 0.75 mg/kg: no response after 3 infusions"


@dataclass(frozen=True, slots=True)
class BottomLine:
    """The decided outcome for the primary instrument; the renderer only prints it."""

    status: OutcomeStatus
    primary_instrument_id: str
    baseline: int | None
    latest: int | None
    change_percent: int | None  # None when undefined (no baseline, or baseline 0)
    infusions_completed: int
    infusions_planned: int
    active_safety_flags: tuple[str, ...] = ()
    next_planned_step: str = ""

    def __post_init__(self) -> None:
        _require(self.status in OUTCOME_STATUSES, f"unknown status {self.status!r}")
        _require(
            self.infusions_completed >= 0 and self.infusions_planned >= 0,
            "infusion counts must not be negative",
        )


@dataclass(frozen=True, slots=True)
class Interpretation:
    """Written and signed by the clinician. Unsigned (a draft) prints "Not yet signed"."""

    text: str = ""
    signer_name: str | None = None
    signed_at: datetime | None = None

    @property
    def is_signed(self) -> bool:
        return bool(self.signer_name) and self.signed_at is not None


@dataclass(frozen=True, slots=True)
class Methods:
    """What the report used: definitions and thresholds as (term, value) pairs, baseline rule."""

    thresholds: tuple[tuple[str, str], ...]
    baseline_rule: str
    notes: str = ""


@dataclass(frozen=True, slots=True)
class ReportInput:
    clinic_name: str
    referring_provider_name: str
    patient_display_name: str
    patient_birth_year: int | None
    report_id: str
    version: int
    kind: ReportKind
    period_start: date
    period_end: date
    data_as_of: datetime  # timezone-aware; also the PDF's creation date (stable hash)
    bottom_line: BottomLine
    series: tuple[InstrumentSeries, ...]
    infusions: tuple[InfusionRow, ...]
    interpretation: Interpretation
    methods: Methods
    # Dates marked on the charts; empty means "the dates of `infusions`".
    infusion_dates: tuple[date, ...] = ()
    confidentiality_notice: str = DEFAULT_CONFIDENTIALITY_NOTICE
    how_to_reply: str = DEFAULT_HOW_TO_REPLY
    clinic_contact: str = ""  # e.g. phone for urgent questions; no patient data

    def __post_init__(self) -> None:
        _require(self.kind in REPORT_KINDS, f"unknown report kind {self.kind!r}")
        _require(self.version >= 1, "version starts at 1")
        _require(self.period_start <= self.period_end, "period starts after it ends")
        _require(
            self.data_as_of.tzinfo is not None and self.data_as_of.utcoffset() is not None,
            "data_as_of must be timezone-aware",
        )
        if self.interpretation.signed_at is not None:
            _require(
                self.interpretation.signed_at.utcoffset() is not None,
                "signed_at must be timezone-aware",
            )

    @property
    def chart_infusion_dates(self) -> tuple[date, ...]:
        if self.infusion_dates:
            return self.infusion_dates
        return tuple(row.date for row in self.infusions)

    @property
    def primary_series(self) -> InstrumentSeries | None:
        for series in self.series:
            if series.instrument_id == self.bottom_line.primary_instrument_id:
                return series
        return None
