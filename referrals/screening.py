"""Screening computed from a referral's content: shown to the clinic, never a decision.

The counts and flags come from ``portal.clinical.scoring`` with the clinic's thresholds; the
coordinator and clinician decide eligibility.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from portal.clinical.scoring import Trial, adequate_failed_trials, is_trd, score
from referrals.models import CONTRAINDICATION_KEYS, ClinicSettings, PriorTrial, Referral

PHQ9_ITEMS = 9
PHQ9_SUICIDALITY_ITEM_INDEX = 8  # item 9, "thoughts that you would be better off dead..."


@dataclass(frozen=True)
class Screening:
    adequate_failed_trials: int
    trd: bool
    phq9_total: int | None
    phq9_band: str | None
    safety_flag: bool
    contraindication_flags: list[str]
    adequate_trial_weeks: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "adequate_failed_trials": self.adequate_failed_trials,
            "trd": self.trd,
            "phq9_total": self.phq9_total,
            "phq9_band": self.phq9_band,
            "safety_flag": self.safety_flag,
            "contraindication_flags": list(self.contraindication_flags),
            "adequate_trial_weeks": self.adequate_trial_weeks,
        }


def _complete_trials(trials: Iterable[PriorTrial]) -> list[Trial]:
    """Trials with the three facts the rule needs; an incomplete draft row is not counted."""
    complete: list[Trial] = []
    for trial in trials:
        if trial.weeks_at_dose is None or not trial.adherence or not trial.outcome:
            continue
        complete.append(
            Trial(
                weeks_at_dose=float(trial.weeks_at_dose),
                adherence=trial.adherence,  # type: ignore[arg-type]
                outcome=trial.outcome,  # type: ignore[arg-type]
            )
        )
    return complete


def phq9_is_complete(answers: Sequence[Any]) -> bool:
    return len(answers) == PHQ9_ITEMS and all(
        isinstance(answer, int) and not isinstance(answer, bool) for answer in answers
    )


def phq9_item9_positive(answers: Sequence[Any]) -> bool:
    """Item 9 above zero, even when the rest of a draft's questionnaire is unanswered."""
    if len(answers) != PHQ9_ITEMS:
        return False
    item9 = answers[PHQ9_SUICIDALITY_ITEM_INDEX]
    return isinstance(item9, int) and not isinstance(item9, bool) and item9 > 0


def compute_screening(
    referral: Referral, trials: Iterable[PriorTrial], clinic_settings: ClinicSettings
) -> Screening:
    weeks = clinic_settings.adequate_trial_weeks
    failed = adequate_failed_trials(_complete_trials(trials), weeks)
    answers = list(referral.phq9_answers or [])
    total: int | None = None
    band: str | None = None
    if phq9_is_complete(answers):
        scored = score("phq9", answers)
        total, band = scored.total, scored.band
    contraindications = referral.contraindications or {}
    return Screening(
        adequate_failed_trials=failed,
        trd=is_trd(failed),
        phq9_total=total,
        phq9_band=band,
        safety_flag=referral.suicidal_intent or phq9_item9_positive(answers),
        contraindication_flags=[
            key for key in CONTRAINDICATION_KEYS if contraindications.get(key) is True
        ],
        adequate_trial_weeks=weeks,
    )
