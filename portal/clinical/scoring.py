"""Questionnaire scoring, safety flags and treatment outcomes.

Pure Python (standard library only, no Django) so that it can be used by models, forms, the API,
report generation and Celery tasks alike, and tested exhaustively without a database.

Every number comes from ``/work/shared/CLINICAL.md``. Values marked *setting* there are clinic
settings and live in :class:`Thresholds`, whose defaults are the CLINICAL.md defaults; reports
print the thresholds they used. Code suggests; clinicians decide: the C-SSRS level computed here is
only the *suggested* level, and TRD counting only produces a summary for the clinician to confirm.

Questionnaire item wording is deliberately not here (it lives in fixtures); this module only knows
item counts, ranges and scoring rules.

Answers are positional: ``answers[0]`` is item 1. Error messages and :attr:`ScoringError.item` use
1-based item numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "CADSS6_SOURCE_ITEMS",
    "CSSRS_LEVELS",
    "INSTRUMENTS",
    "TRD_MIN_FAILED_TRIALS",
    "Band",
    "DatedScore",
    "InstrumentSpec",
    "Outcome",
    "Score",
    "ScoringError",
    "Thresholds",
    "Trial",
    "adequate_failed_trials",
    "band_for",
    "cadss6_from_cadss",
    "change_percent",
    "cssrs_level",
    "is_trd",
    "outcome",
    "score",
    "select_baseline",
]


class ScoringError(ValueError):
    """An answer set (or an outcome input) that cannot be scored.

    ``item`` is the 1-based item number the problem is about, or ``None`` when the problem is not
    about a single item (wrong number of answers, unknown instrument, bad arguments).
    """

    def __init__(self, message: str, *, item: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.item = item


# --------------------------------------------------------------------------------------------
# Instrument definitions (one table, no per-instrument copy-paste)
# --------------------------------------------------------------------------------------------

Kind = Literal["numeric", "yes_no"]

NOT_BANDED: Final = "not_banded"


@dataclass(frozen=True, slots=True)
class Band:
    """A severity band covering totals ``low..high`` inclusive."""

    low: int
    high: int
    id: str


def _sum_total(items: Sequence[int]) -> int:
    return sum(items)


def _qids_total(items: Sequence[int]) -> int:
    """QIDS-SR16 total: nine domains, each the item or the highest of its items (0-27)."""
    i = items  # items[0] is item 1
    sleep = max(i[0:4])  # items 1-4
    mood = i[4]  # item 5
    appetite_weight = max(i[5:9])  # items 6-9
    concentration = i[9]  # item 10
    self_view = i[10]  # item 11
    suicidal_ideation = i[11]  # item 12
    interest = i[12]  # item 13
    energy = i[13]  # item 14
    psychomotor = max(i[14:16])  # items 15-16
    return (
        sleep
        + mood
        + appetite_weight
        + concentration
        + self_view
        + suicidal_ideation
        + interest
        + energy
        + psychomotor
    )


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Everything the code needs to know about one instrument.

    ``item_flags`` maps a 1-based item number to the safety flag raised when that item is > 0.
    ``bands`` is empty for instruments that are not banded (CADSS, CADSS-6) and for the C-SSRS,
    whose "band" is its suggested level. ``total`` is ``None`` for the C-SSRS, which has no total.
    ``outcome_measure`` says whether baseline/change/response outcomes are meaningful.
    ``remission_setting`` names the :class:`Thresholds` field holding the remission cut-off.
    """

    id: str
    name: str
    item_count: int
    kind: Kind
    item_max: int
    max_total: int | None
    total: Callable[[Sequence[int]], int] | None
    bands: tuple[Band, ...] = ()
    item_flags: Mapping[int, str] = field(default_factory=dict)
    outcome_measure: bool = False
    remission_setting: str | None = None


def _bands(*edges: tuple[int, int, str]) -> tuple[Band, ...]:
    return tuple(Band(low, high, band_id) for low, high, band_id in edges)


_SPECS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(
        id="phq9",
        name="PHQ-9",
        item_count=9,
        kind="numeric",
        item_max=3,
        max_total=27,
        total=_sum_total,
        bands=_bands(
            (0, 4, "minimal"),
            (5, 9, "mild"),
            (10, 14, "moderate"),
            (15, 19, "moderately_severe"),
            (20, 27, "severe"),
        ),
        item_flags={9: "phq9_item9"},
        outcome_measure=True,
        remission_setting="phq9_remission_max",
    ),
    InstrumentSpec(
        id="gad7",
        name="GAD-7",
        item_count=7,
        kind="numeric",
        item_max=3,
        max_total=21,
        total=_sum_total,
        bands=_bands(
            (0, 4, "minimal"),
            (5, 9, "mild"),
            (10, 14, "moderate"),
            (15, 21, "severe"),
        ),
        outcome_measure=True,
        remission_setting=None,  # CLINICAL.md defines no GAD-7 remission cut-off
    ),
    InstrumentSpec(
        id="qids_sr16",
        name="QIDS-SR16",
        item_count=16,
        kind="numeric",
        item_max=3,
        max_total=27,
        total=_qids_total,
        bands=_bands(
            (0, 5, "none"),
            (6, 10, "mild"),
            (11, 15, "moderate"),
            (16, 20, "severe"),
            (21, 27, "very_severe"),
        ),
        item_flags={12: "qids_item12"},
        outcome_measure=True,
        remission_setting="qids_remission_max",
    ),
    InstrumentSpec(
        id="madrs",
        name="MADRS",
        item_count=10,
        kind="numeric",
        item_max=6,
        max_total=60,
        total=_sum_total,
        bands=_bands(
            (0, 6, "absent"),
            (7, 19, "mild"),
            (20, 34, "moderate"),
            (35, 60, "severe"),
        ),
        outcome_measure=True,
        remission_setting="madrs_remission_max",
    ),
    InstrumentSpec(
        id="cssrs_screen",
        name="C-SSRS screener",
        item_count=6,
        kind="yes_no",
        item_max=1,
        max_total=None,
        total=None,
    ),
    InstrumentSpec(
        id="cadss",
        name="CADSS",
        item_count=23,
        kind="numeric",
        item_max=4,
        max_total=92,
        total=_sum_total,
    ),
    InstrumentSpec(
        id="cadss6",
        name="CADSS-6",
        item_count=6,
        kind="numeric",
        item_max=4,
        max_total=24,
        total=_sum_total,
    ),
)

INSTRUMENTS: Final[Mapping[str, InstrumentSpec]] = MappingProxyType({s.id: s for s in _SPECS})

#: CADSS item numbers that make up CADSS-6, in CADSS-6 item order.
CADSS6_SOURCE_ITEMS: Final[tuple[int, ...]] = (1, 2, 6, 7, 15, 22)

#: C-SSRS suggested levels, lowest first.
CSSRS_LEVELS: Final[tuple[str, ...]] = ("none", "low", "moderate", "high")

_CSSRS_SKIPPABLE: Final[tuple[int, ...]] = (3, 4, 5)


def _spec(instrument: str) -> InstrumentSpec:
    spec = INSTRUMENTS.get(instrument) if isinstance(instrument, str) else None
    if spec is None:
        known = ", ".join(INSTRUMENTS)
        raise ScoringError(f"Unknown instrument {instrument!r}; expected one of: {known}.")
    return spec


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """The result of scoring one answer set.

    ``band`` is a machine id (e.g. ``"moderately_severe"``); for the C-SSRS it is the suggested
    level (``"none"``, ``"low"``, ``"moderate"``, ``"high"``) and ``total`` is ``None``; for CADSS
    and CADSS-6 it is ``"not_banded"``. ``flags`` are safety flags, empty when there are none.
    """

    instrument: str
    total: int | None
    band: str
    flags: tuple[str, ...] = ()


def _check_answers_container(spec: InstrumentSpec, answers: object) -> Sequence[object]:
    if isinstance(answers, str | bytes | bytearray) or not isinstance(answers, Sequence):
        raise ScoringError(
            f"{spec.name} answers must be a list of {spec.item_count} answers, "
            f"got {type(answers).__name__}."
        )
    if len(answers) != spec.item_count:
        raise ScoringError(f"{spec.name} needs {spec.item_count} answers, got {len(answers)}.")
    return answers


def _numeric_items(spec: InstrumentSpec, answers: Sequence[object]) -> tuple[int, ...]:
    requirement = f"an integer from 0 to {spec.item_max}"
    items: list[int] = []
    for number, value in enumerate(answers, start=1):
        if value is None:
            raise ScoringError(f"Item {number} is missing; it must be {requirement}.", item=number)
        # bool is a subclass of int: True/False must not pass as 1/0 on a numeric scale.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScoringError(
                f"Item {number} must be {requirement}, got {value!r}.",
                item=number,
            )
        if not 0 <= value <= spec.item_max:
            raise ScoringError(f"Item {number} must be {requirement}, got {value}.", item=number)
        items.append(value)
    return tuple(items)


def _cssrs_items(answers: Sequence[object]) -> tuple[bool | None, ...]:
    """Validate C-SSRS screener answers; returns the answers with skipped items as ``None``.

    Q1, Q2 and Q6 are always required. Q3-Q5 are required when Q2 is yes, and must be skipped
    (``None``) when Q2 is no, following the screener's "if Q2 is no, skip to Q6" rule.
    """
    requirement = "yes or no (True or False)"
    q2 = answers[1]
    items: list[bool | None] = []
    for number, value in enumerate(answers, start=1):
        skipped = number in _CSSRS_SKIPPABLE and q2 is False
        if skipped:
            if value is not None:
                raise ScoringError(
                    f"Item {number} must be skipped (None) when item 2 is no.", item=number
                )
            items.append(None)
            continue
        if value is None:
            raise ScoringError(f"Item {number} is missing; it must be {requirement}.", item=number)
        if not isinstance(value, bool):
            raise ScoringError(f"Item {number} must be {requirement}, got {value!r}.", item=number)
        items.append(value)
    return tuple(items)


def _cssrs_level_from_items(items: Sequence[bool | None]) -> str:
    q1, q2, q3, q4, q5, q6 = items
    if q4 or q5 or q6:
        return "high"
    if q3:
        return "moderate"
    if q1 or q2:
        return "low"
    return "none"


def cssrs_level(answers: Sequence[object]) -> str:
    """Suggested C-SSRS screener level: ``"none"``, ``"low"``, ``"moderate"`` or ``"high"``.

    Q4, Q5 or Q6 yes -> high; else Q3 yes -> moderate; else Q1 or Q2 yes -> low; all no -> none.
    The clinician records the final level; this is only a suggestion.
    """
    spec = INSTRUMENTS["cssrs_screen"]
    return _cssrs_level_from_items(_cssrs_items(_check_answers_container(spec, answers)))


def band_for(instrument: str, total: int) -> str:
    """Severity band id for a total (``"not_banded"`` for CADSS/CADSS-6).

    Raises :class:`ScoringError` for the C-SSRS (no total) or a total outside ``0..max``.
    """
    spec = _spec(instrument)
    if spec.max_total is None:
        raise ScoringError(f"{spec.name} has no total and no severity bands.")
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= spec.max_total:
        raise ScoringError(
            f"A {spec.name} total must be an integer from 0 to {spec.max_total}, got {total!r}."
        )
    if not spec.bands:
        return NOT_BANDED
    for band in spec.bands:
        if band.low <= total <= band.high:
            return band.id
    raise AssertionError(f"{spec.name} bands do not cover {total}")  # pragma: no cover


def score(instrument: str, answers: Sequence[object]) -> Score:
    """Score one answer set.

    Numeric instruments take integers (``bool`` is rejected); the C-SSRS screener takes booleans
    with ``None`` for skipped Q3-Q5. Raises :class:`ScoringError` naming the offending item.
    """
    spec = _spec(instrument)
    checked = _check_answers_container(spec, answers)

    if spec.kind == "yes_no":
        level = _cssrs_level_from_items(_cssrs_items(checked))
        level_flags: tuple[str, ...] = (f"cssrs_{level}",) if level in ("moderate", "high") else ()
        return Score(instrument=spec.id, total=None, band=level, flags=level_flags)

    items = _numeric_items(spec, checked)
    if spec.total is None:  # pragma: no cover - every numeric spec defines a total
        raise AssertionError(f"{spec.name} has no total function")
    total = spec.total(items)
    flags = tuple(flag for number, flag in sorted(spec.item_flags.items()) if items[number - 1] > 0)
    return Score(instrument=spec.id, total=total, band=band_for(spec.id, total), flags=flags)


def cadss6_from_cadss(answers: Sequence[object]) -> tuple[int, ...]:
    """Pick the CADSS-6 items (CADSS items 1, 2, 6, 7, 15, 22) out of a full 23-item CADSS.

    The full answer set is validated first, so errors name the CADSS item number.
    """
    spec = INSTRUMENTS["cadss"]
    items = _numeric_items(spec, _check_answers_container(spec, answers))
    return tuple(items[number - 1] for number in CADSS6_SOURCE_ITEMS)


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Clinic settings used for outcomes; defaults are the CLINICAL.md defaults.

    Remission is ``total <= <instrument>_remission_max``: PHQ-9 < 5 is stored as 4; some clinics
    use MADRS < 10, i.e. ``madrs_remission_max=9``.
    """

    response_drop_percent: int = 50
    partial_response_low_percent: int = 25
    phq9_remission_max: int = 4
    qids_remission_max: int = 5
    madrs_remission_max: int = 10
    baseline_window_days: int = 14
    adequate_trial_weeks: int = 4

    def __post_init__(self) -> None:
        for name in (
            "response_drop_percent",
            "partial_response_low_percent",
            "phq9_remission_max",
            "qids_remission_max",
            "madrs_remission_max",
            "baseline_window_days",
            "adequate_trial_weeks",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ScoringError(f"{name} must be a whole number >= 0, got {value!r}.")
        if not 0 < self.partial_response_low_percent < self.response_drop_percent <= 100:
            raise ScoringError(
                "Thresholds need 0 < partial_response_low_percent < response_drop_percent <= 100."
            )

    def remission_max(self, instrument: str) -> int | None:
        """The highest total that counts as remission, or ``None`` if there is no rule."""
        setting = _spec(instrument).remission_setting
        return None if setting is None else int(getattr(self, setting))


@dataclass(frozen=True, slots=True)
class DatedScore:
    """A scored total with the (timezone-aware) time it was taken."""

    instrument: str
    total: int
    taken_at: datetime

    def __post_init__(self) -> None:
        spec = _spec(self.instrument)
        if spec.max_total is None:
            raise ScoringError(f"{spec.name} has no total to compare.")
        total = self.total
        if (
            isinstance(total, bool)
            or not isinstance(total, int)
            or not 0 <= total <= spec.max_total
        ):
            raise ScoringError(
                f"A {spec.name} total must be an integer from 0 to {spec.max_total}, got {total!r}."
            )
        _require_aware(self.taken_at, "taken_at")

    @classmethod
    def from_score(cls, scored: Score, taken_at: datetime) -> DatedScore:
        if scored.total is None:
            raise ScoringError(f"{_spec(scored.instrument).name} has no total to compare.")
        return cls(instrument=scored.instrument, total=scored.total, taken_at=taken_at)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScoringError(f"{what} must be a timezone-aware datetime.")


def select_baseline(
    scores: Sequence[DatedScore], first_infusion_at: datetime, window_days: int
) -> DatedScore | None:
    """The baseline: the last score taken on or before the first infusion, within the window.

    A score qualifies when ``first_infusion_at - window_days <= taken_at <= first_infusion_at``
    (both ends inclusive, exact elapsed time, so a score taken the same day but after the first
    infusion started does not qualify). Of several qualifying scores the latest wins; on an
    exact tie of ``taken_at`` the one later in ``scores`` wins. The caller passes scores of a
    single instrument (:func:`outcome` filters them). Returns ``None`` when none qualifies.
    """
    _require_aware(first_infusion_at, "first_infusion_at")
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 0:
        raise ScoringError(f"window_days must be a whole number >= 0, got {window_days!r}.")
    earliest = first_infusion_at - timedelta(days=window_days)
    best: DatedScore | None = None
    for candidate in scores:
        _require_aware(candidate.taken_at, "taken_at")
        if earliest <= candidate.taken_at <= first_infusion_at and (
            best is None or candidate.taken_at >= best.taken_at
        ):
            best = candidate
    return best


def _round_half_away_from_zero(numerator: int, denominator: int) -> int:
    """Exact integer rounding of numerator/denominator (denominator > 0), halves away from 0."""
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def change_percent(baseline: int, latest: int) -> int | None:
    """``(latest - baseline) / baseline`` as a whole-number percentage; ``None`` if baseline is 0.

    Negative means improvement (a drop). Rounding is exact (integer arithmetic, no floats) and
    rounds halves away from zero, so ``-12.5 %`` -> ``-13`` and ``12.5 %`` -> ``13``: the same
    magnitude for a drop and a rise, unlike Python's ``round`` (banker's rounding).
    """
    for name, value in (("baseline", baseline), ("latest", latest)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScoringError(f"{name} must be a whole-number total >= 0, got {value!r}.")
    if baseline == 0:
        return None
    return _round_half_away_from_zero((latest - baseline) * 100, baseline)


def _meets_drop(baseline: int, latest: int, percent: int) -> bool:
    """Exact test of ``(baseline - latest) / baseline >= percent / 100`` (baseline > 0)."""
    return (baseline - latest) * 100 >= percent * baseline


@dataclass(frozen=True, slots=True)
class Outcome:
    """Baseline-to-latest outcome for one instrument.

    ``response``/``partial_response`` are ``None`` when undefined (no baseline, baseline 0, or no
    score after the first infusion yet); ``remission`` is ``None`` when there is no latest score or
    the instrument has no remission rule (GAD-7). ``time_to_response`` is the 1-based infusion
    number at which response was first met. ``note`` explains every undefined value ("" if none).
    """

    instrument: str
    baseline: DatedScore | None
    latest: DatedScore | None
    change_percent: int | None
    response: bool | None
    partial_response: bool | None
    remission: bool | None
    time_to_response: int | None
    note: str
    thresholds: Thresholds

    @property
    def status(self) -> str:
        """Bottom-line status: remission, response, partial, none, or undefined."""
        if self.remission:
            return "remission"
        if self.response:
            return "response"
        if self.partial_response:
            return "partial"
        if self.response is False:
            return "none"
        return "undefined"


def outcome(
    instrument: str,
    scores: Sequence[DatedScore],
    infusion_times: Sequence[datetime],
    thresholds: Thresholds | None = None,
) -> Outcome:
    """Compute baseline, latest, change, response, partial response, remission, time to response.

    Only ``scores`` of ``instrument`` are used (scores compare only within one instrument).
    The latest score is the last one taken after the first infusion started, i.e. after the
    baseline. Response is a drop of at least ``response_drop_percent``; partial response a drop of
    at least ``partial_response_low_percent`` but below response. Both are judged on the exact
    ratio, not on the rounded ``change_percent``. Remission is ``latest.total <= remission_max``
    and does not need a baseline.
    """
    spec = _spec(instrument)
    if not spec.outcome_measure:
        raise ScoringError(f"Outcomes are not computed for {spec.name}.")
    used = thresholds if thresholds is not None else Thresholds()
    for moment in infusion_times:
        _require_aware(moment, "infusion time")
    own = sorted(
        (s for s in scores if s.instrument == spec.id),
        key=lambda s: s.taken_at,  # stable: input order breaks ties
    )
    for s in own:
        _require_aware(s.taken_at, "taken_at")

    notes: list[str] = []
    baseline: DatedScore | None = None
    latest: DatedScore | None = None
    after_first: list[DatedScore] = []
    if not infusion_times:
        notes.append("No infusion recorded: baseline and response are undefined.")
    else:
        first_infusion_at = min(infusion_times)
        baseline = select_baseline(own, first_infusion_at, used.baseline_window_days)
        after_first = [s for s in own if s.taken_at > first_infusion_at]
        latest = after_first[-1] if after_first else None
        if baseline is None:
            notes.append(
                f"No baseline within {used.baseline_window_days} days before the first infusion."
            )
        elif baseline.total == 0:
            notes.append("Baseline is 0: response is undefined.")
        if latest is None:
            notes.append("No score after the first infusion yet.")

    change: int | None = None
    response: bool | None = None
    partial: bool | None = None
    time_to_response: int | None = None
    if baseline is not None and latest is not None:
        change = change_percent(baseline.total, latest.total)
        if baseline.total > 0:
            response = _meets_drop(baseline.total, latest.total, used.response_drop_percent)
            partial = not response and _meets_drop(
                baseline.total, latest.total, used.partial_response_low_percent
            )
            first_responding = next(
                (
                    s
                    for s in after_first
                    if _meets_drop(baseline.total, s.total, used.response_drop_percent)
                ),
                None,
            )
            if first_responding is not None:
                time_to_response = sum(1 for t in infusion_times if t <= first_responding.taken_at)

    remission_max = used.remission_max(spec.id)
    remission: bool | None = None
    if remission_max is None:
        notes.append(f"{spec.name} has no remission rule.")
    elif latest is not None:
        remission = latest.total <= remission_max

    return Outcome(
        instrument=spec.id,
        baseline=baseline,
        latest=latest,
        change_percent=change,
        response=response,
        partial_response=partial,
        remission=remission,
        time_to_response=time_to_response,
        note=" ".join(notes),
        thresholds=used,
    )


# --------------------------------------------------------------------------------------------
# Treatment-resistant depression
# --------------------------------------------------------------------------------------------

Adherence = Literal["good", "partial", "poor"]
TrialOutcome = Literal["response", "partial_response", "no_response", "intolerance"]

_ADHERENCE: Final[frozenset[str]] = frozenset({"good", "partial", "poor"})
_TRIAL_OUTCOMES: Final[frozenset[str]] = frozenset(
    {"response", "partial_response", "no_response", "intolerance"}
)
_FAILED_OUTCOMES: Final[frozenset[str]] = frozenset({"no_response", "partial_response"})

#: TRD: no adequate response to at least this many adequate antidepressant trials.
TRD_MIN_FAILED_TRIALS: Final = 2


@dataclass(frozen=True, slots=True)
class Trial:
    """One antidepressant trial as recorded on the referral.

    ``weeks_at_dose`` is the time at a therapeutic dose (fractions allowed). ``current_episode``
    is False for trials in an earlier depressive episode, which do not count towards TRD.
    """

    weeks_at_dose: float
    adherence: Adherence
    outcome: TrialOutcome
    current_episode: bool = True

    def __post_init__(self) -> None:
        weeks = self.weeks_at_dose
        if isinstance(weeks, bool) or not isinstance(weeks, int | float) or not weeks >= 0:
            raise ScoringError(f"weeks_at_dose must be a number >= 0, got {weeks!r}.")
        if self.adherence not in _ADHERENCE:
            raise ScoringError(
                f"adherence must be one of good, partial, poor; got {self.adherence!r}."
            )
        if self.outcome not in _TRIAL_OUTCOMES:
            raise ScoringError(
                "outcome must be one of response, partial_response, no_response, intolerance; "
                f"got {self.outcome!r}."
            )


def adequate_failed_trials(trials: Sequence[Trial], min_weeks: int) -> int:
    """Count adequate failed trials in the current episode.

    A trial counts when all hold: it is in the current episode; ``weeks_at_dose >= min_weeks``;
    adherence is ``"good"`` (partial or poor adherence is *not* adequate adherence, because the
    trial then did not test the drug at the stated dose); and the outcome is ``"no_response"`` or
    ``"partial_response"`` (partial response is still no adequate response). ``"intolerance"``
    never counts, even after ``min_weeks``, and ``"response"`` never counts.
    """
    if isinstance(min_weeks, bool) or not isinstance(min_weeks, int) or min_weeks < 0:
        raise ScoringError(f"min_weeks must be a whole number >= 0, got {min_weeks!r}.")
    return sum(
        1
        for t in trials
        if t.current_episode
        and t.weeks_at_dose >= min_weeks
        and t.adherence == "good"
        and t.outcome in _FAILED_OUTCOMES
    )


def is_trd(count: int) -> bool:
    """True when the adequate failed trial count meets the TRD definition (at least 2).

    A suggestion for the summary; the clinician confirms eligibility.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ScoringError(f"count must be a whole number >= 0, got {count!r}.")
    return count >= TRD_MIN_FAILED_TRIALS
