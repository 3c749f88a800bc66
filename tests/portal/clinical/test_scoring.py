"""Exhaustive tests for portal.clinical.scoring (pure Python: no Django, no database).

Every expected number is pinned from /work/shared/CLINICAL.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.clinical.scoring import (
    CADSS6_SOURCE_ITEMS,
    CSSRS_LEVELS,
    INSTRUMENTS,
    TRD_MIN_FAILED_TRIALS,
    DatedScore,
    Outcome,
    Score,
    ScoringError,
    Thresholds,
    Trial,
    adequate_failed_trials,
    band_for,
    cadss6_from_cadss,
    change_percent,
    cssrs_level,
    is_trd,
    outcome,
    score,
    select_baseline,
)

# No example database on disk (keeps the working tree clean); no deadline (CI machines vary).
HYPOTHESIS = settings(database=None, deadline=None, max_examples=200)

NUMERIC = ("phq9", "gad7", "qids_sr16", "madrs", "cadss", "cadss6")

# First item of each QIDS-SR16 domain (1-based): sleep, mood, appetite/weight, concentration,
# self-view, suicidal ideation, interest, energy, psychomotor.
QIDS_DOMAIN_LEADS = (1, 5, 6, 10, 11, 12, 13, 14, 15)

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # first infusion


def day(n: float, hours: float = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hours)


def answers_for_total(instrument: str, total: int) -> list[int]:
    """A valid answer set whose total is `total` (items filled greedily from item 1)."""
    spec = INSTRUMENTS[instrument]
    answers = [0] * spec.item_count
    positions = (
        [n - 1 for n in QIDS_DOMAIN_LEADS]
        if instrument == "qids_sr16"
        else list(range(spec.item_count))
    )
    remaining = total
    for pos in positions:
        answers[pos] = min(spec.item_max, remaining)
        remaining -= answers[pos]
    assert remaining == 0, f"cannot build {instrument} total {total}"
    return answers


def ds(instrument: str, total: int, taken_at: datetime) -> DatedScore:
    return DatedScore(instrument=instrument, total=total, taken_at=taken_at)


# --------------------------------------------------------------------------------------------
# Instrument table
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "name", "item_count", "item_max", "max_total"),
    [
        ("phq9", "PHQ-9", 9, 3, 27),
        ("gad7", "GAD-7", 7, 3, 21),
        ("qids_sr16", "QIDS-SR16", 16, 3, 27),
        ("madrs", "MADRS", 10, 6, 60),
        ("cssrs_screen", "C-SSRS screener", 6, 1, None),
        ("cadss", "CADSS", 23, 4, 92),
        ("cadss6", "CADSS-6", 6, 4, 24),
    ],
)
def test_instrument_table(
    instrument: str, name: str, item_count: int, item_max: int, max_total: int | None
) -> None:
    spec = INSTRUMENTS[instrument]
    assert spec.id == instrument
    assert spec.name == name
    assert spec.item_count == item_count
    assert spec.item_max == item_max
    assert spec.max_total == max_total


def test_instrument_ids_are_exactly_the_seven() -> None:
    assert set(INSTRUMENTS) == {
        "phq9",
        "gad7",
        "qids_sr16",
        "madrs",
        "cssrs_screen",
        "cadss",
        "cadss6",
    }


@pytest.mark.parametrize("instrument", ["phq9", "gad7", "qids_sr16", "madrs"])
def test_bands_are_contiguous_and_cover_zero_to_max(instrument: str) -> None:
    spec = INSTRUMENTS[instrument]
    assert spec.bands[0].low == 0
    assert spec.bands[-1].high == spec.max_total
    for lower, upper in zip(spec.bands, spec.bands[1:], strict=False):
        assert upper.low == lower.high + 1


def test_instruments_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        INSTRUMENTS["new"] = INSTRUMENTS["phq9"]  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# Minimum, maximum and every band edge
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "min_band", "max_total", "max_band"),
    [
        ("phq9", "minimal", 27, "severe"),
        ("gad7", "minimal", 21, "severe"),
        ("qids_sr16", "none", 27, "very_severe"),
        ("madrs", "absent", 60, "severe"),
        ("cadss", "not_banded", 92, "not_banded"),
        ("cadss6", "not_banded", 24, "not_banded"),
    ],
)
def test_minimum_and_maximum(instrument: str, min_band: str, max_total: int, max_band: str) -> None:
    spec = INSTRUMENTS[instrument]
    lowest = score(instrument, [0] * spec.item_count)
    assert lowest == Score(instrument=instrument, total=0, band=min_band, flags=())
    highest = score(instrument, [spec.item_max] * spec.item_count)
    assert highest.total == max_total
    assert highest.band == max_band


BAND_EDGES = [
    # PHQ-9: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe
    ("phq9", 0, "minimal"),
    ("phq9", 4, "minimal"),
    ("phq9", 5, "mild"),
    ("phq9", 9, "mild"),
    ("phq9", 10, "moderate"),
    ("phq9", 14, "moderate"),
    ("phq9", 15, "moderately_severe"),
    ("phq9", 19, "moderately_severe"),
    ("phq9", 20, "severe"),
    ("phq9", 27, "severe"),
    # GAD-7: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe
    ("gad7", 0, "minimal"),
    ("gad7", 4, "minimal"),
    ("gad7", 5, "mild"),
    ("gad7", 9, "mild"),
    ("gad7", 10, "moderate"),
    ("gad7", 14, "moderate"),
    ("gad7", 15, "severe"),
    ("gad7", 21, "severe"),
    # QIDS-SR16: 0-5 none, 6-10 mild, 11-15 moderate, 16-20 severe, 21-27 very severe
    ("qids_sr16", 0, "none"),
    ("qids_sr16", 5, "none"),
    ("qids_sr16", 6, "mild"),
    ("qids_sr16", 10, "mild"),
    ("qids_sr16", 11, "moderate"),
    ("qids_sr16", 15, "moderate"),
    ("qids_sr16", 16, "severe"),
    ("qids_sr16", 20, "severe"),
    ("qids_sr16", 21, "very_severe"),
    ("qids_sr16", 27, "very_severe"),
    # MADRS: 0-6 absent, 7-19 mild, 20-34 moderate, 35-60 severe
    ("madrs", 0, "absent"),
    ("madrs", 6, "absent"),
    ("madrs", 7, "mild"),
    ("madrs", 19, "mild"),
    ("madrs", 20, "moderate"),
    ("madrs", 34, "moderate"),
    ("madrs", 35, "severe"),
    ("madrs", 60, "severe"),
    # CADSS / CADSS-6: not banded
    ("cadss", 0, "not_banded"),
    ("cadss", 46, "not_banded"),
    ("cadss", 92, "not_banded"),
    ("cadss6", 0, "not_banded"),
    ("cadss6", 24, "not_banded"),
]


@pytest.mark.parametrize(("instrument", "total", "band"), BAND_EDGES)
def test_band_for_edges(instrument: str, total: int, band: str) -> None:
    assert band_for(instrument, total) == band


@pytest.mark.parametrize(("instrument", "total", "band"), BAND_EDGES)
def test_score_band_edges_end_to_end(instrument: str, total: int, band: str) -> None:
    result = score(instrument, answers_for_total(instrument, total))
    assert result.instrument == instrument
    assert result.total == total
    assert result.band == band


@pytest.mark.parametrize(
    ("instrument", "total"),
    [
        ("phq9", -1),
        ("phq9", 28),
        ("gad7", 22),
        ("qids_sr16", 28),
        ("madrs", 61),
        ("cadss", 93),
        ("cadss6", 25),
        ("phq9", True),
        ("phq9", 4.0),
    ],
)
def test_band_for_rejects_impossible_totals(instrument: str, total: object) -> None:
    with pytest.raises(ScoringError) as excinfo:
        band_for(instrument, total)  # type: ignore[arg-type]
    assert excinfo.value.item is None


def test_band_for_message() -> None:
    with pytest.raises(
        ScoringError, match=r"^A PHQ-9 total must be an integer from 0 to 27, got 28\.$"
    ):
        band_for("phq9", 28)


def test_band_for_cssrs_has_no_bands() -> None:
    with pytest.raises(
        ScoringError, match=r"^C-SSRS screener has no total and no severity bands\.$"
    ):
        band_for("cssrs_screen", 0)


# --------------------------------------------------------------------------------------------
# QIDS-SR16 domain scoring
# --------------------------------------------------------------------------------------------


def test_qids_worked_example() -> None:
    #          sleep 1-4    mood  appetite 6-9  conc self SI  int  energy psychomotor 15-16
    answers = [1, 3, 0, 2, 2, 0, 1, 3, 2, 1, 2, 0, 1, 2, 3, 1]
    # sleep max(1,3,0,2)=3, mood 2, appetite max(0,1,3,2)=3, concentration 1, self-view 2,
    # suicidal ideation 0, interest 1, energy 2, psychomotor max(3,1)=3 -> 17 (the sum would be 24)
    assert sum(answers) == 24
    assert score("qids_sr16", answers) == Score("qids_sr16", 17, "severe", ())


def test_qids_all_ones_is_nine_not_sixteen() -> None:
    assert score("qids_sr16", [1] * 16) == Score("qids_sr16", 9, "mild", ("qids_item12",))


@pytest.mark.parametrize(
    ("items", "label"),
    [
        ((1, 2, 3, 4), "sleep"),
        ((6, 7, 8, 9), "appetite/weight"),
        ((15, 16), "psychomotor"),
    ],
)
def test_qids_multi_item_domain_counts_only_its_highest_item(
    items: tuple[int, ...], label: str
) -> None:
    for item in items:
        answers = [0] * 16
        answers[item - 1] = 2
        assert score("qids_sr16", answers).total == 2, (label, item)
    answers = [0] * 16
    for value, item in enumerate(items, start=1):
        answers[item - 1] = min(value, 3)
    assert score("qids_sr16", answers).total == min(len(items), 3), label
    answers = [0] * 16
    for item in items:
        answers[item - 1] = 3
    assert score("qids_sr16", answers).total == 3, label


@pytest.mark.parametrize("item", [5, 10, 11, 12, 13, 14])
def test_qids_single_item_domains_count_in_full(item: int) -> None:
    answers = [0] * 16
    answers[item - 1] = 3
    assert score("qids_sr16", answers).total == 3


# --------------------------------------------------------------------------------------------
# Safety flags
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2, 3])
def test_phq9_item9_flag_whatever_the_total(value: int) -> None:
    answers = [0] * 8 + [value]
    assert score("phq9", answers) == Score("phq9", value, "minimal", ("phq9_item9",))


def test_phq9_no_flag_when_item9_is_zero_even_if_severe() -> None:
    assert score("phq9", [3] * 8 + [0]) == Score("phq9", 24, "severe", ())


def test_phq9_flag_at_maximum() -> None:
    assert score("phq9", [3] * 9).flags == ("phq9_item9",)


@pytest.mark.parametrize("value", [1, 2, 3])
def test_qids_item12_flag(value: int) -> None:
    answers = [0] * 16
    answers[11] = value
    assert score("qids_sr16", answers) == Score("qids_sr16", value, "none", ("qids_item12",))


@pytest.mark.parametrize("item", [i for i in range(1, 17) if i != 12])
def test_qids_other_items_do_not_flag(item: int) -> None:
    answers = [0] * 16
    answers[item - 1] = 3
    assert score("qids_sr16", answers).flags == ()


@pytest.mark.parametrize("instrument", ["gad7", "madrs", "cadss", "cadss6"])
def test_instruments_without_item_flags_never_flag(instrument: str) -> None:
    spec = INSTRUMENTS[instrument]
    assert score(instrument, [spec.item_max] * spec.item_count).flags == ()


# --------------------------------------------------------------------------------------------
# C-SSRS screener
# --------------------------------------------------------------------------------------------

Y, N, S = True, False, None  # yes, no, skipped


@pytest.mark.parametrize(
    ("answers", "level", "flags"),
    [
        ([N, N, S, S, S, N], "none", ()),
        ([Y, N, S, S, S, N], "low", ()),
        ([N, Y, N, N, N, N], "low", ()),
        ([Y, Y, N, N, N, N], "low", ()),
        ([Y, Y, Y, N, N, N], "moderate", ("cssrs_moderate",)),
        ([N, Y, Y, N, N, N], "moderate", ("cssrs_moderate",)),
        ([Y, Y, N, Y, N, N], "high", ("cssrs_high",)),
        ([Y, Y, N, N, Y, N], "high", ("cssrs_high",)),
        ([Y, Y, Y, Y, Y, N], "high", ("cssrs_high",)),
        ([Y, Y, Y, N, N, Y], "high", ("cssrs_high",)),
        ([N, N, S, S, S, Y], "high", ("cssrs_high",)),
        ([Y, N, S, S, S, Y], "high", ("cssrs_high",)),
        ([Y, Y, Y, Y, Y, Y], "high", ("cssrs_high",)),
    ],
)
def test_cssrs_levels(answers: list[bool | None], level: str, flags: tuple[str, ...]) -> None:
    assert score("cssrs_screen", answers) == Score("cssrs_screen", None, level, flags)
    assert cssrs_level(answers) == level


def test_cssrs_levels_constant() -> None:
    assert CSSRS_LEVELS == ("none", "low", "moderate", "high")


@pytest.mark.parametrize("item", [3, 4, 5])
@pytest.mark.parametrize("value", [True, False])
def test_cssrs_q3_to_q5_must_be_skipped_when_q2_is_no(item: int, value: bool) -> None:
    answers: list[bool | None] = [Y, N, S, S, S, N]
    answers[item - 1] = value
    with pytest.raises(ScoringError) as excinfo:
        score("cssrs_screen", answers)
    assert excinfo.value.item == item
    assert str(excinfo.value) == f"Item {item} must be skipped (None) when item 2 is no."


@pytest.mark.parametrize("item", [3, 4, 5])
def test_cssrs_q3_to_q5_required_when_q2_is_yes(item: int) -> None:
    answers: list[bool | None] = [Y, Y, N, N, N, N]
    answers[item - 1] = None
    with pytest.raises(ScoringError) as excinfo:
        score("cssrs_screen", answers)
    assert excinfo.value.item == item
    assert str(excinfo.value) == f"Item {item} is missing; it must be yes or no (True or False)."


@pytest.mark.parametrize("item", [1, 2, 6])
def test_cssrs_q1_q2_q6_always_required(item: int) -> None:
    answers: list[bool | None] = [N, N, S, S, S, N]
    answers[item - 1] = None
    with pytest.raises(ScoringError) as excinfo:
        score("cssrs_screen", answers)
    assert excinfo.value.item == item


@pytest.mark.parametrize("bad", [0, 1, "yes", "no", 1.0])
def test_cssrs_rejects_non_booleans(bad: object) -> None:
    with pytest.raises(ScoringError) as excinfo:
        score("cssrs_screen", [bad, N, S, S, S, N])
    assert excinfo.value.item == 1
    assert str(excinfo.value) == f"Item 1 must be yes or no (True or False), got {bad!r}."


def test_cssrs_skipped_items_are_positional_not_absent() -> None:
    with pytest.raises(ScoringError) as excinfo:
        score("cssrs_screen", [N, N, N])
    assert excinfo.value.item is None
    assert str(excinfo.value) == "C-SSRS screener needs 6 answers, got 3."


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "count", "message"),
    [
        ("phq9", 8, "PHQ-9 needs 9 answers, got 8."),
        ("phq9", 10, "PHQ-9 needs 9 answers, got 10."),
        ("phq9", 0, "PHQ-9 needs 9 answers, got 0."),
        ("gad7", 6, "GAD-7 needs 7 answers, got 6."),
        ("qids_sr16", 15, "QIDS-SR16 needs 16 answers, got 15."),
        ("madrs", 11, "MADRS needs 10 answers, got 11."),
        ("cadss", 22, "CADSS needs 23 answers, got 22."),
        ("cadss6", 7, "CADSS-6 needs 6 answers, got 7."),
        ("cssrs_screen", 7, "C-SSRS screener needs 6 answers, got 7."),
    ],
)
def test_wrong_answer_count(instrument: str, count: int, message: str) -> None:
    with pytest.raises(ScoringError) as excinfo:
        score(instrument, [0] * count)
    assert str(excinfo.value) == message
    assert excinfo.value.item is None


def test_scoring_error_is_a_value_error() -> None:
    assert issubclass(ScoringError, ValueError)
    with pytest.raises(ValueError, match="PHQ-9 needs 9 answers"):
        score("phq9", [0])


@pytest.mark.parametrize("instrument", ["phq-9", "PHQ9", "", "bdi"])
def test_unknown_instrument(instrument: str) -> None:
    with pytest.raises(ScoringError, match=r"^Unknown instrument") as excinfo:
        score(instrument, [0] * 9)
    assert excinfo.value.item is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Item 4 is missing; it must be an integer from 0 to 3."),
        (-1, "Item 4 must be an integer from 0 to 3, got -1."),
        (4, "Item 4 must be an integer from 0 to 3, got 4."),
        (True, "Item 4 must be an integer from 0 to 3, got True."),
        (False, "Item 4 must be an integer from 0 to 3, got False."),
        (1.0, "Item 4 must be an integer from 0 to 3, got 1.0."),
        (1.5, "Item 4 must be an integer from 0 to 3, got 1.5."),
        ("1", "Item 4 must be an integer from 0 to 3, got '1'."),
        ([1], "Item 4 must be an integer from 0 to 3, got [1]."),
    ],
)
def test_bad_item_is_named(value: object, message: str) -> None:
    answers: list[object] = [0] * 9
    answers[3] = value
    with pytest.raises(ScoringError) as excinfo:
        score("phq9", answers)
    assert str(excinfo.value) == message
    assert excinfo.value.item == 4


@pytest.mark.parametrize(
    ("instrument", "item", "value", "message"),
    [
        ("madrs", 10, 7, "Item 10 must be an integer from 0 to 6, got 7."),
        ("cadss", 23, 5, "Item 23 must be an integer from 0 to 4, got 5."),
        ("cadss6", 1, 5, "Item 1 must be an integer from 0 to 4, got 5."),
        ("qids_sr16", 16, 4, "Item 16 must be an integer from 0 to 3, got 4."),
        ("gad7", 7, 4, "Item 7 must be an integer from 0 to 3, got 4."),
    ],
)
def test_item_ranges_per_instrument(instrument: str, item: int, value: int, message: str) -> None:
    answers = [0] * INSTRUMENTS[instrument].item_count
    answers[item - 1] = value
    with pytest.raises(ScoringError) as excinfo:
        score(instrument, answers)
    assert str(excinfo.value) == message
    assert excinfo.value.item == item


def test_first_bad_item_is_reported() -> None:
    with pytest.raises(ScoringError) as excinfo:
        score("phq9", [0, 0, 9, 0, None, 0, 0, 0, 0])
    assert excinfo.value.item == 3


def test_count_is_checked_before_items() -> None:
    with pytest.raises(ScoringError) as excinfo:
        score("phq9", [9] * 8)
    assert excinfo.value.item is None


@pytest.mark.parametrize(
    "answers", ["000000000", b"000000000", dict.fromkeys(range(9), 0), 0, None]
)
def test_answers_must_be_a_sequence(answers: object) -> None:
    with pytest.raises(
        ScoringError, match=r"^PHQ-9 answers must be a list of 9 answers"
    ) as excinfo:
        score("phq9", answers)  # type: ignore[arg-type]
    assert excinfo.value.item is None


def test_tuples_are_accepted() -> None:
    assert score("gad7", (1, 1, 1, 1, 1, 0, 0)) == Score("gad7", 5, "mild", ())


def test_score_is_frozen() -> None:
    result = score("phq9", [0] * 9)
    with pytest.raises(AttributeError):
        result.total = 3  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# CADSS-6
# --------------------------------------------------------------------------------------------


def test_cadss6_source_items() -> None:
    assert CADSS6_SOURCE_ITEMS == (1, 2, 6, 7, 15, 22)


def test_cadss6_from_cadss_picks_items_1_2_6_7_15_22() -> None:
    full = [0] * 23
    for value, item in zip((4, 3, 2, 1, 4, 3), CADSS6_SOURCE_ITEMS, strict=True):
        full[item - 1] = value
    full[2] = 4  # item 3 is not in CADSS-6
    full[22] = 4  # item 23 is not in CADSS-6
    short = cadss6_from_cadss(full)
    assert short == (4, 3, 2, 1, 4, 3)
    assert score("cadss6", short) == Score("cadss6", 17, "not_banded", ())
    assert score("cadss", full) == Score("cadss", 25, "not_banded", ())


def test_cadss6_from_cadss_validates_full_set() -> None:
    with pytest.raises(ScoringError) as excinfo:
        cadss6_from_cadss([0] * 14 + [5] + [0] * 8)
    assert excinfo.value.item == 15
    with pytest.raises(ScoringError, match=r"^CADSS needs 23 answers, got 6\.$"):
        cadss6_from_cadss([0] * 6)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@st.composite
def valid_answers(draw: st.DrawFn) -> tuple[str, list[int]]:
    instrument = draw(st.sampled_from(NUMERIC))
    spec = INSTRUMENTS[instrument]
    answers = draw(
        st.lists(st.integers(0, spec.item_max), min_size=spec.item_count, max_size=spec.item_count)
    )
    return instrument, answers


@HYPOTHESIS
@given(valid_answers())
def test_property_total_within_range_and_band_consistent(case: tuple[str, list[int]]) -> None:
    instrument, answers = case
    spec = INSTRUMENTS[instrument]
    result = score(instrument, answers)
    assert result.total is not None
    assert spec.max_total is not None
    assert 0 <= result.total <= spec.max_total
    assert result.total <= sum(answers)
    assert result.band == band_for(instrument, result.total)
    if spec.bands:
        matching = [b for b in spec.bands if b.low <= result.total <= b.high]
        assert [b.id for b in matching] == [result.band]
    else:
        assert result.band == "not_banded"
    if instrument != "qids_sr16":
        assert result.total == sum(answers)


@HYPOTHESIS
@given(valid_answers(), st.data())
def test_property_out_of_range_item_is_rejected_naming_it(
    case: tuple[str, list[int]], data: st.DataObject
) -> None:
    instrument, answers = case
    spec = INSTRUMENTS[instrument]
    position = data.draw(st.integers(0, spec.item_count - 1), label="position")
    bad = data.draw(
        st.one_of(st.integers(max_value=-1), st.integers(min_value=spec.item_max + 1)),
        label="bad",
    )
    answers[position] = bad
    with pytest.raises(ScoringError) as excinfo:
        score(instrument, answers)
    assert excinfo.value.item == position + 1
    assert str(excinfo.value).startswith(f"Item {position + 1} must be an integer from 0 to ")


@HYPOTHESIS
@given(st.lists(st.integers(0, 3), min_size=16, max_size=16))
def test_property_qids_total_is_domain_sum(answers: list[int]) -> None:
    a = [0, *answers]  # a[n] is item n
    expected = (
        max(a[1:5]) + a[5] + max(a[6:10]) + a[10] + a[11] + a[12] + a[13] + a[14] + max(a[15:17])
    )
    assert score("qids_sr16", answers).total == expected


@HYPOTHESIS
@given(
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_property_cssrs_level(head: list[bool], middle: list[bool]) -> None:
    q1, q2, q6 = head
    skipped: list[bool | None] = [None, None, None]
    answers: list[bool | None] = [q1, q2, *(middle if q2 else skipped), q6]
    result = score("cssrs_screen", answers)
    q3, q4, q5 = middle if q2 else [False] * 3
    expected = "high" if q4 or q5 or q6 else "moderate" if q3 else "low" if q1 or q2 else "none"
    assert result.band == expected
    assert result.total is None
    assert result.flags == ((f"cssrs_{expected}",) if expected in ("moderate", "high") else ())


@HYPOTHESIS
@given(st.integers(1, 200), st.integers(0, 200))
def test_property_change_percent_rounds_half_away_from_zero(baseline: int, latest: int) -> None:
    exact = Fraction(latest - baseline, baseline) * 100
    got = change_percent(baseline, latest)
    assert got is not None
    assert abs(exact - got) <= Fraction(1, 2)
    if abs(exact - got) == Fraction(1, 2):
        assert abs(got) > abs(exact)


# --------------------------------------------------------------------------------------------
# Baseline selection
# --------------------------------------------------------------------------------------------


def test_baseline_on_the_day_before_the_infusion() -> None:
    same_morning = ds("phq9", 18, T0 - timedelta(hours=1))
    earlier = ds("phq9", 20, day(-5))
    assert select_baseline([same_morning, earlier], T0, 14) == same_morning


def test_baseline_exactly_at_infusion_start_counts() -> None:
    at_start = ds("phq9", 18, T0)
    assert select_baseline([at_start], T0, 14) == at_start


def test_score_after_first_infusion_is_not_baseline_even_same_day() -> None:
    before = ds("phq9", 20, day(-3))
    after = ds("phq9", 10, T0 + timedelta(minutes=1))
    assert select_baseline([before, after], T0, 14) == before
    assert select_baseline([after], T0, 14) is None


def test_baseline_window_edges() -> None:
    exactly_14_days = ds("phq9", 20, day(-14))
    just_outside = ds("phq9", 21, day(-14) - timedelta(seconds=1))
    assert select_baseline([exactly_14_days], T0, 14) == exactly_14_days
    assert select_baseline([just_outside], T0, 14) is None
    assert select_baseline([just_outside], T0, 15) == just_outside


def test_baseline_outside_window() -> None:
    assert select_baseline([ds("phq9", 20, day(-30))], T0, 14) is None


def test_baseline_none_when_no_scores() -> None:
    assert select_baseline([], T0, 14) is None


def test_baseline_is_the_last_in_window_regardless_of_input_order() -> None:
    a = ds("phq9", 20, day(-10))
    b = ds("phq9", 19, day(-2))
    c = ds("phq9", 22, day(-7))
    assert select_baseline([b, a, c], T0, 14) == b


def test_baseline_tie_goes_to_the_later_entry() -> None:
    a = ds("phq9", 20, day(-2))
    b = ds("phq9", 19, day(-2))
    assert select_baseline([a, b], T0, 14) == b


def test_baseline_window_zero_days() -> None:
    at_start = ds("phq9", 18, T0)
    before = ds("phq9", 20, T0 - timedelta(seconds=1))
    assert select_baseline([before], T0, 0) is None
    assert select_baseline([before, at_start], T0, 0) == at_start


def test_baseline_compares_across_time_zones() -> None:
    eastern = timezone(timedelta(hours=-5))
    # 2025-03-10 03:30 at UTC-5 is 08:30 UTC: before the 09:00 UTC infusion.
    taken = ds("phq9", 20, datetime(2025, 3, 10, 3, 30, tzinfo=eastern))
    assert select_baseline([taken], T0, 14) == taken


def test_baseline_rejects_naive_datetimes_and_bad_window() -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(
        ScoringError, match=r"^first_infusion_at must be a timezone-aware datetime\.$"
    ):
        select_baseline([], naive, 14)
    with pytest.raises(ScoringError, match=r"^window_days must be a whole number >= 0"):
        select_baseline([], T0, -1)


def test_dated_score_validation() -> None:
    with pytest.raises(ScoringError, match=r"^taken_at must be a timezone-aware datetime\.$"):
        ds("phq9", 3, T0.replace(tzinfo=None))
    with pytest.raises(
        ScoringError, match=r"^A PHQ-9 total must be an integer from 0 to 27, got 28\.$"
    ):
        ds("phq9", 28, T0)
    with pytest.raises(ScoringError, match=r"^C-SSRS screener has no total to compare\.$"):
        ds("cssrs_screen", 0, T0)
    with pytest.raises(ScoringError, match=r"^Unknown instrument"):
        ds("bdi", 0, T0)


def test_dated_score_from_score() -> None:
    assert DatedScore.from_score(score("phq9", [1] * 9), T0) == ds("phq9", 9, T0)
    cssrs = score("cssrs_screen", [N, N, S, S, S, N])
    with pytest.raises(ScoringError, match=r"^C-SSRS screener has no total to compare\.$"):
        DatedScore.from_score(cssrs, T0)


# --------------------------------------------------------------------------------------------
# Change percent
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "latest", "expected"),
    [
        (10, 5, -50),
        (20, 10, -50),
        (8, 7, -13),  # -12.5 rounds away from zero (Python's round would give -12)
        (8, 9, 13),  # +12.5 -> +13
        (8, 5, -38),  # -37.5 -> -38
        (8, 3, -63),  # -62.5 -> -63
        (3, 2, -33),  # -33.33
        (3, 1, -67),  # -66.67
        (6, 5, -17),  # -16.67
        (7, 4, -43),  # -42.86
        (27, 0, -100),
        (10, 10, 0),
        (5, 10, 100),
        (1, 27, 2600),
        (200, 199, -1),  # -0.5 -> -1
        (200, 201, 1),  # +0.5 -> +1
        (201, 200, 0),  # -0.4975 -> 0
    ],
)
def test_change_percent(baseline: int, latest: int, expected: int) -> None:
    assert change_percent(baseline, latest) == expected


@pytest.mark.parametrize("latest", [0, 5])
def test_change_percent_baseline_zero_is_none(latest: int) -> None:
    assert change_percent(0, latest) is None


@pytest.mark.parametrize(("baseline", "latest"), [(-1, 0), (5, -1), (True, 0), (5, 2.0), ("5", 2)])
def test_change_percent_rejects_bad_input(baseline: object, latest: object) -> None:
    with pytest.raises(ScoringError):
        change_percent(baseline, latest)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------


def test_threshold_defaults_match_clinical_reference() -> None:
    t = Thresholds()
    assert t.response_drop_percent == 50
    assert t.partial_response_low_percent == 25
    assert t.phq9_remission_max == 4
    assert t.qids_remission_max == 5
    assert t.madrs_remission_max == 10
    assert t.baseline_window_days == 14
    assert t.adequate_trial_weeks == 4
    assert t.remission_max("phq9") == 4
    assert t.remission_max("qids_sr16") == 5
    assert t.remission_max("madrs") == 10
    assert t.remission_max("gad7") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"response_drop_percent": 25},  # partial must stay below response
        {"partial_response_low_percent": 0},
        {"response_drop_percent": 101},
        {"baseline_window_days": -1},
        {"madrs_remission_max": -1},
        {"adequate_trial_weeks": True},
        {"phq9_remission_max": 4.5},
    ],
)
def test_thresholds_reject_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ScoringError):
        Thresholds(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

INDUCTION = [day(0), day(2), day(4), day(7), day(9), day(11)]


def run(
    instrument: str,
    baseline: int | None,
    latest: int | None,
    thresholds: Thresholds | None = None,
) -> Outcome:
    scores = []
    if baseline is not None:
        scores.append(ds(instrument, baseline, day(-1)))
    if latest is not None:
        scores.append(ds(instrument, latest, day(12)))
    return outcome(instrument, scores, INDUCTION, thresholds)


@pytest.mark.parametrize(
    ("baseline", "latest", "change", "response", "partial", "status"),
    [
        (20, 10, -50, True, False, "response"),  # exactly 50 %: response
        (20, 11, -45, False, True, "partial"),  # 45 %: partial
        (18, 9, -50, True, False, "response"),
        (18, 10, -44, False, True, "partial"),  # 44.4 %
        (20, 15, -25, False, True, "partial"),  # exactly 25 %: partial
        (20, 16, -20, False, False, "none"),  # 20 %: none
        (12, 9, -25, False, True, "partial"),
        (12, 10, -17, False, False, "none"),
        (20, 20, 0, False, False, "none"),
        (15, 20, 33, False, False, "none"),  # worse
        (27, 5, -81, True, False, "response"),
    ],
)
def test_response_and_partial_response_edges(
    baseline: int, latest: int, change: int, response: bool, partial: bool, status: str
) -> None:
    result = run("phq9", baseline, latest)
    assert result.change_percent == change
    assert result.response is response
    assert result.partial_response is partial
    assert result.remission is False
    assert result.status == status
    assert result.note == ""


def test_response_is_judged_on_exact_ratio_not_rounded_change() -> None:
    # MADRS 59 -> 30 is a 49.15 % drop (displayed -49): partial, not response.
    result = run("madrs", 59, 30)
    assert result.change_percent == -49
    assert result.response is False
    assert result.partial_response is True


def test_custom_response_thresholds() -> None:
    t = Thresholds(response_drop_percent=60, partial_response_low_percent=30)
    assert run("phq9", 20, 10, t).response is False
    assert run("phq9", 20, 10, t).partial_response is True
    assert run("phq9", 20, 8, t).response is True
    assert run("phq9", 20, 15, t).partial_response is False
    assert run("phq9", 20, 14, t).partial_response is True


def test_outcome_full_example() -> None:
    result = run("phq9", 20, 8)
    assert result == Outcome(
        instrument="phq9",
        baseline=ds("phq9", 20, day(-1)),
        latest=ds("phq9", 8, day(12)),
        change_percent=-60,
        response=True,
        partial_response=False,
        remission=False,
        time_to_response=6,
        note="",
        thresholds=Thresholds(),
    )


@pytest.mark.parametrize(
    ("instrument", "latest", "thresholds", "remission"),
    [
        # PHQ-9 < 5 (default max 4)
        ("phq9", 4, Thresholds(), True),
        ("phq9", 5, Thresholds(), False),
        ("phq9", 0, Thresholds(), True),
        ("phq9", 5, Thresholds(phq9_remission_max=5), True),
        ("phq9", 6, Thresholds(phq9_remission_max=5), False),
        ("phq9", 4, Thresholds(phq9_remission_max=3), False),
        # QIDS-SR16 <= 5
        ("qids_sr16", 5, Thresholds(), True),
        ("qids_sr16", 6, Thresholds(), False),
        ("qids_sr16", 5, Thresholds(qids_remission_max=4), False),
        ("qids_sr16", 4, Thresholds(qids_remission_max=4), True),
        # MADRS <= 10 (setting: some use < 10, i.e. max 9)
        ("madrs", 10, Thresholds(), True),
        ("madrs", 11, Thresholds(), False),
        ("madrs", 10, Thresholds(madrs_remission_max=9), False),
        ("madrs", 9, Thresholds(madrs_remission_max=9), True),
    ],
)
def test_remission_edges(
    instrument: str, latest: int, thresholds: Thresholds, remission: bool
) -> None:
    result = run(instrument, 25, latest, thresholds)
    assert result.remission is remission
    assert result.thresholds == thresholds
    if remission:
        assert result.status == "remission"


def test_gad7_has_no_remission_rule() -> None:
    result = run("gad7", 16, 2)
    assert result.remission is None
    assert result.response is True
    assert result.change_percent == -88
    assert result.note == "GAD-7 has no remission rule."
    assert result.status == "response"


def test_baseline_zero_makes_response_undefined() -> None:
    result = run("phq9", 0, 3)
    assert result.baseline == ds("phq9", 0, day(-1))
    assert result.latest == ds("phq9", 3, day(12))
    assert result.change_percent is None
    assert result.response is None
    assert result.partial_response is None
    assert result.time_to_response is None
    assert result.remission is True
    assert result.note == "Baseline is 0: response is undefined."


def test_baseline_zero_without_remission_is_undefined_status() -> None:
    result = run("phq9", 0, 12)
    assert result.remission is False
    assert result.status == "undefined"


def test_missing_baseline() -> None:
    scores = [ds("phq9", 20, day(-20)), ds("phq9", 8, day(12))]
    result = outcome("phq9", scores, INDUCTION, Thresholds())
    assert result.baseline is None
    assert result.latest == ds("phq9", 8, day(12))
    assert result.change_percent is None
    assert result.response is None
    assert result.partial_response is None
    assert result.time_to_response is None
    assert result.remission is False
    assert result.note == "No baseline within 14 days before the first infusion."
    assert result.status == "undefined"


def test_missing_baseline_note_uses_the_setting_and_wider_window_finds_it() -> None:
    scores = [ds("phq9", 20, day(-20)), ds("phq9", 8, day(12))]
    narrow = outcome("phq9", scores, INDUCTION, Thresholds(baseline_window_days=7))
    assert narrow.note == "No baseline within 7 days before the first infusion."
    wide = outcome("phq9", scores, INDUCTION, Thresholds(baseline_window_days=21))
    assert wide.baseline == ds("phq9", 20, day(-20))
    assert wide.response is True
    assert wide.note == ""


def test_no_score_after_first_infusion_yet() -> None:
    result = run("phq9", 20, None)
    assert result.baseline == ds("phq9", 20, day(-1))
    assert result.latest is None
    assert result.change_percent is None
    assert result.response is None
    assert result.remission is None
    assert result.note == "No score after the first infusion yet."


def test_no_infusions() -> None:
    result = outcome("phq9", [ds("phq9", 20, day(-1))], [], Thresholds())
    assert result.baseline is None
    assert result.latest is None
    assert result.response is None
    assert result.note == "No infusion recorded: baseline and response are undefined."


def test_no_scores_at_all_combines_notes() -> None:
    result = outcome("gad7", [], INDUCTION, Thresholds())
    assert result.note == (
        "No baseline within 14 days before the first infusion. "
        "No score after the first infusion yet. GAD-7 has no remission rule."
    )


def test_default_thresholds_when_omitted() -> None:
    result = outcome("phq9", [ds("phq9", 20, day(-1)), ds("phq9", 10, day(12))], INDUCTION)
    assert result.thresholds == Thresholds()
    assert result.response is True


def test_latest_is_last_score_after_first_infusion() -> None:
    scores = [
        ds("phq9", 12, day(8)),
        ds("phq9", 20, day(-1)),
        ds("phq9", 9, day(13)),
        ds("phq9", 15, day(3)),
        ds("phq9", 22, day(-3)),
    ]
    result = outcome("phq9", scores, INDUCTION, Thresholds())
    assert result.baseline == ds("phq9", 20, day(-1))
    assert result.latest == ds("phq9", 9, day(13))
    assert result.change_percent == -55


def test_scores_compare_only_within_one_instrument() -> None:
    scores = [
        ds("phq9", 20, day(-1)),
        ds("madrs", 40, day(-2)),
        ds("madrs", 10, day(12)),
        ds("qids_sr16", 3, day(13)),
    ]
    result = outcome("phq9", scores, INDUCTION, Thresholds())
    assert result.baseline == ds("phq9", 20, day(-1))
    assert result.latest is None
    madrs = outcome("madrs", scores, INDUCTION, Thresholds())
    assert madrs.baseline == ds("madrs", 40, day(-2))
    assert madrs.latest == ds("madrs", 10, day(12))
    assert madrs.change_percent == -75
    assert madrs.remission is True


def test_time_to_response() -> None:
    # Infusions on days 0, 2, 4, 7, 9, 11. Baseline 20.
    scores = [
        ds("phq9", 20, day(-1)),
        ds("phq9", 14, day(3)),  # after infusion 2: 30 %
        ds("phq9", 10, day(8)),  # after infusion 4: 50 % -> first response
        ds("phq9", 6, day(12)),
    ]
    result = outcome("phq9", scores, INDUCTION, Thresholds())
    assert result.time_to_response == 4
    assert result.response is True


def test_time_to_response_counts_an_infusion_starting_at_the_score_time() -> None:
    scores = [ds("phq9", 20, day(-1)), ds("phq9", 10, day(7))]  # taken as infusion 4 starts
    assert outcome("phq9", scores, INDUCTION, Thresholds()).time_to_response == 4
    scores = [ds("phq9", 20, day(-1)), ds("phq9", 10, day(7) - timedelta(seconds=1))]
    assert outcome("phq9", scores, INDUCTION, Thresholds()).time_to_response == 3


def test_time_to_response_kept_when_response_is_later_lost() -> None:
    scores = [ds("phq9", 20, day(-1)), ds("phq9", 9, day(1)), ds("phq9", 16, day(12))]
    result = outcome("phq9", scores, INDUCTION, Thresholds())
    assert result.time_to_response == 1
    assert result.response is False
    assert result.partial_response is False
    assert result.change_percent == -20


def test_time_to_response_none_without_response() -> None:
    assert run("phq9", 20, 11).time_to_response is None


def test_time_to_response_with_unsorted_infusions() -> None:
    scores = [ds("phq9", 20, day(-1)), ds("phq9", 10, day(5))]
    shuffled = [day(9), day(2), day(0), day(11), day(4), day(7)]
    assert outcome("phq9", scores, shuffled, Thresholds()).time_to_response == 3


@pytest.mark.parametrize("instrument", ["cssrs_screen", "cadss", "cadss6"])
def test_outcome_not_computed_for_non_outcome_instruments(instrument: str) -> None:
    with pytest.raises(ScoringError, match=r"^Outcomes are not computed for "):
        outcome(instrument, [], INDUCTION, Thresholds())


def test_outcome_rejects_naive_infusion_times() -> None:
    with pytest.raises(ScoringError, match=r"^infusion time must be a timezone-aware datetime\.$"):
        outcome("phq9", [], [T0.replace(tzinfo=None)], Thresholds())


# --------------------------------------------------------------------------------------------
# Treatment-resistant depression
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trial", "counts"),
    [
        (Trial(weeks_at_dose=4, adherence="good", outcome="no_response"), True),
        (Trial(weeks_at_dose=4, adherence="good", outcome="partial_response"), True),
        (Trial(weeks_at_dose=12, adherence="good", outcome="no_response"), True),
        (Trial(weeks_at_dose=3.9, adherence="good", outcome="no_response"), False),
        (Trial(weeks_at_dose=3, adherence="good", outcome="no_response"), False),
        (Trial(weeks_at_dose=4, adherence="partial", outcome="no_response"), False),
        (Trial(weeks_at_dose=8, adherence="poor", outcome="no_response"), False),
        (Trial(weeks_at_dose=8, adherence="good", outcome="response"), False),
        (Trial(weeks_at_dose=2, adherence="good", outcome="intolerance"), False),
        (Trial(weeks_at_dose=8, adherence="good", outcome="intolerance"), False),
        (
            Trial(weeks_at_dose=8, adherence="good", outcome="no_response", current_episode=False),
            False,
        ),
    ],
)
def test_adequate_trial_rules(trial: Trial, counts: bool) -> None:
    assert adequate_failed_trials([trial], 4) == (1 if counts else 0)


def test_adequate_failed_trials_counts_and_trd() -> None:
    trials = [
        Trial(weeks_at_dose=6, adherence="good", outcome="no_response"),
        Trial(weeks_at_dose=2, adherence="good", outcome="intolerance"),
        Trial(weeks_at_dose=5, adherence="good", outcome="partial_response"),
        Trial(weeks_at_dose=4, adherence="poor", outcome="no_response"),
        Trial(weeks_at_dose=10, adherence="good", outcome="response"),
    ]
    count = adequate_failed_trials(trials, Thresholds().adequate_trial_weeks)
    assert count == 2
    assert is_trd(count) is True
    assert adequate_failed_trials(trials, 6) == 1
    assert is_trd(adequate_failed_trials(trials, 6)) is False
    assert adequate_failed_trials([], 4) == 0


def test_min_weeks_setting_edge() -> None:
    trial = Trial(weeks_at_dose=6, adherence="good", outcome="no_response")
    assert adequate_failed_trials([trial], 6) == 1
    assert adequate_failed_trials([trial], 7) == 0
    assert adequate_failed_trials([trial], 0) == 1


@pytest.mark.parametrize(("count", "expected"), [(0, False), (1, False), (2, True), (3, True)])
def test_is_trd(count: int, expected: bool) -> None:
    assert TRD_MIN_FAILED_TRIALS == 2
    assert is_trd(count) is expected


@pytest.mark.parametrize("count", [-1, True, 2.0])
def test_is_trd_rejects_bad_count(count: object) -> None:
    with pytest.raises(ScoringError):
        is_trd(count)  # type: ignore[arg-type]


@pytest.mark.parametrize("min_weeks", [-1, 4.0, True])
def test_adequate_failed_trials_rejects_bad_min_weeks(min_weeks: object) -> None:
    with pytest.raises(ScoringError):
        adequate_failed_trials([], min_weeks)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weeks_at_dose": -1, "adherence": "good", "outcome": "no_response"},
        {"weeks_at_dose": float("nan"), "adherence": "good", "outcome": "no_response"},
        {"weeks_at_dose": "4", "adherence": "good", "outcome": "no_response"},
        {"weeks_at_dose": 4, "adherence": "excellent", "outcome": "no_response"},
        {"weeks_at_dose": 4, "adherence": "good", "outcome": "failed"},
    ],
)
def test_trial_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ScoringError):
        Trial(**kwargs)  # type: ignore[arg-type]
