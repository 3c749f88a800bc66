"""Report rendering layer: plain dataclasses in, SVG / PDF out. No Django, no database."""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pypdf import PdfReader

from reports.rendering import (
    BottomLine,
    InfusionRow,
    InstrumentSeries,
    Interpretation,
    Methods,
    ReportInput,
    ScoreBand,
    build_chart,
    pdf_text,
    render_pdf,
    render_svg,
)

SVG_NS = "{http://www.w3.org/2000/svg}"
CLINIC_TZ = timezone(timedelta(hours=-4))  # a fixed offset: no tz database needed

PHQ9_BANDS = (
    ScoreBand(0, 4, "minimal"),
    ScoreBand(5, 9, "mild"),
    ScoreBand(10, 14, "moderate"),
    ScoreBand(15, 19, "moderately severe"),
    ScoreBand(20, 27, "severe"),
)
GAD7_BANDS = (
    ScoreBand(0, 4, "minimal"),
    ScoreBand(5, 9, "mild"),
    ScoreBand(10, 14, "moderate"),
    ScoreBand(15, 21, "severe"),
)
INFUSION_DATES = tuple(date(2025, 3, d) for d in (10, 12, 14, 17, 19, 21))
CONFIDENTIALITY = (
    "CONFIDENTIAL: protected health information for the treating and referring clinicians only."
)


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2025, 3, day, hour, 0, tzinfo=CLINIC_TZ)


def phq9(points: tuple[tuple[datetime, int], ...] | None = None) -> InstrumentSeries:
    if points is None:
        # baseline 19 before infusion 1, 8 in week 3 of treatment (-58 %: response)
        points = ((at(7), 19), (at(12), 16), (at(17), 12), (at(21), 10), (at(28), 8))
    return InstrumentSeries(
        instrument_id="phq9",
        display_name="PHQ-9",
        max_score=27,
        bands=PHQ9_BANDS,
        remission_line=5,
        remission_label="Remission < 5",
        points=points,
    )


def gad7() -> InstrumentSeries:
    return InstrumentSeries(
        instrument_id="gad7",
        display_name="GAD-7",
        max_score=21,
        bands=GAD7_BANDS,
        points=((at(7), 14), (at(14), 11), (at(21), 8), (at(28), 6)),
    )


def infusion(day: date, **overrides: object) -> InfusionRow:
    values: dict[str, object] = {
        "date": day,
        "weight_kg": 77.0,
        "mg_per_kg": 0.5,
        "total_mg": 38.5,
        "duration_min": 40,
        "pre_systolic": 126,
        "pre_diastolic": 80,
        "peak_systolic": 141,
        "peak_diastolic": 88,
        "post_systolic": 128,
        "post_diastolic": 82,
        "pre_hr": 72,
        "peak_hr": 84,
        "post_hr": 74,
        "lowest_spo2": 97,
        "cadss_peak": 14,
    }
    values.update(overrides)
    return InfusionRow(**values)  # type: ignore[arg-type]


def make_report(**overrides: object) -> ReportInput:
    infusions = (
        infusion(INFUSION_DATES[0], cadss_peak=22, adverse_events="Nausea (mild), resolved"),
        infusion(INFUSION_DATES[1], adverse_events="Dizziness (mild) after infusion"),
        infusion(
            INFUSION_DATES[2],
            peak_systolic=152,
            peak_diastolic=94,
            duration_min=50,
            adverse_events="Elevated BP at 30 min, rate slowed; resolved by 60 min",
            dose_change_note="Infused over 50 min instead of 40: BP 152/94 at 30 min",
        ),
        infusion(INFUSION_DATES[3], cadss_peak=10),
        infusion(INFUSION_DATES[4], cadss_peak=9, lowest_spo2=96),
        infusion(INFUSION_DATES[5], cadss_peak=8),
    )
    values: dict[str, object] = {
        "clinic_name": "Harbor Ketamine Clinic",
        "referring_provider_name": "Dr. Priya Raman, MD",
        "patient_display_name": "Jordan Avery",
        "patient_birth_year": 1984,
        "report_id": "RPT-2025-0042",
        "version": 1,
        "kind": "interim",
        "period_start": date(2025, 3, 3),
        "period_end": date(2025, 3, 28),
        "data_as_of": datetime(2025, 3, 28, 17, 30, tzinfo=CLINIC_TZ),
        "bottom_line": BottomLine(
            status="response",
            primary_instrument_id="phq9",
            baseline=19,
            latest=8,
            change_percent=-58,
            infusions_completed=6,
            infusions_planned=6,
            active_safety_flags=(),
            next_planned_step="First maintenance infusion in 4 weeks (2025-04-25)",
        ),
        "series": (phq9(), gad7()),
        "infusions": infusions,
        "infusion_dates": INFUSION_DATES,
        "interpretation": Interpretation(
            text=(
                "Depressive symptoms fell from moderately severe to mild over the induction "
                "series (PHQ-9 19 -> 8), meeting response but not remission. Anxiety improved "
                "in parallel. Treatment was well tolerated; one transient BP elevation settled "
                "after slowing the infusion. Recommend maintenance every 4 weeks and continuing "
                "current sertraline; please review at your next visit."
            ),
            signer_name="Dr. Alex Moreno, MD",
            signed_at=datetime(2025, 3, 28, 18, 5, tzinfo=CLINIC_TZ),
        ),
        "methods": Methods(
            thresholds=(
                ("Change", "(latest - baseline) / baseline, rounded to a whole percent"),
                ("Response", "drop of 50 % or more from baseline"),
                ("Partial response", "drop of 25-49 % from baseline"),
                ("Remission", "PHQ-9 < 5"),
                ("Pre-dose BP delay", "above 140/90 mmHg"),
            ),
            baseline_rule=(
                "The last score of an instrument taken on or before the first infusion, "
                "within 14 days."
            ),
        ),
        "confidentiality_notice": CONFIDENTIALITY,
    }
    values.update(overrides)
    return ReportInput(**values)  # type: ignore[arg-type]


def pdf_pages_text(data: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    return render_pdf(make_report())


@pytest.fixture(scope="module")
def report_text(report_pdf: bytes) -> str:
    return squash("\n".join(pdf_pages_text(report_pdf)))


# ------------------------------------------------------------------------------------- PDF


def test_pdf_is_a_pdf_of_one_to_three_pages(report_pdf: bytes) -> None:
    assert report_pdf.startswith(b"%PDF-")
    assert 1 <= len(PdfReader(io.BytesIO(report_pdf)).pages) <= 3


def test_pdf_header_and_bottom_line(report_text: str) -> None:
    assert "Harbor Ketamine Clinic" in report_text
    assert "Dr. Priya Raman, MD" in report_text
    assert "Jordan Avery" in report_text
    assert "1984" in report_text
    assert "RPT-2025-0042" in report_text
    assert "2025-03-03 to 2025-03-28" in report_text
    assert "2025-03-28 17:30" in report_text
    assert CONFIDENTIALITY in report_text
    assert "Response" in report_text
    assert "baseline 19 -> latest 8" in report_text
    assert "-58%" in report_text
    assert "6 / 6" in report_text
    assert "None active" in report_text
    assert "First maintenance infusion in 4 weeks" in report_text


def test_pdf_sections_in_order(report_text: str) -> None:
    headings = [
        "Bottom line",
        "Score trends",
        "Scores by date",
        "Treatment course",
        "Safety and tolerability",
        "Clinician interpretation and recommendations",
        "Methods",
        "Instruments",
        "Definitions and thresholds used",
        "Baseline rule",
        "How to reply",
    ]
    positions = [report_text.find(h) for h in headings]
    assert all(p >= 0 for p in positions), dict(zip(headings, positions, strict=True))
    assert positions == sorted(positions)


def test_pdf_scores_tables_and_signature(report_text: str) -> None:
    for score_cell in ("19 (moderately severe)", "8 (mild)", "14 (moderate)", "6 (mild)"):
        assert score_cell in report_text
    assert "38.5" in report_text  # total mg
    assert "0.50" in report_text  # mg/kg
    assert "152/94" in report_text  # peak BP
    assert "Nausea (mild), resolved" in report_text
    assert "Infused over 50 min instead of 40" in report_text
    assert "Signed by" in report_text
    assert "Dr. Alex Moreno, MD" in report_text
    assert "Not yet signed" not in report_text
    assert "secure message thread" in report_text
    assert "Page 1 of" in report_text


def test_pdf_draws_charts_with_vector_ops(report_pdf: bytes) -> None:
    page = PdfReader(io.BytesIO(report_pdf)).pages[0]
    ops = page.get_contents()
    assert ops is not None
    stream = ops.get_data()
    assert re.search(rb" re f\b", stream)  # filled rectangles: severity bands
    assert len(re.findall(rb" l\b", stream)) >= 20  # lines: axes, markers, polyline
    text = page.extract_text() or ""
    assert "PHQ-9" in text
    assert "GAD-7" in text
    assert "Remission < 5" in text
    assert "moderately severe" in text  # band label


def test_pdf_is_deterministic(report_pdf: bytes) -> None:
    assert render_pdf(make_report()) == report_pdf
    assert render_pdf(make_report(version=2)) != report_pdf


def test_unsigned_draft_says_not_yet_signed() -> None:
    data = render_pdf(make_report(interpretation=Interpretation(text="Draft text.")))
    text = squash(" ".join(pdf_pages_text(data)))
    assert "Not yet signed" in text
    assert "Signed by" not in text


def test_safety_flags_are_printed() -> None:
    flags = ("PHQ-9 item 9 > 0 on 2025-03-21",)
    bottom = dataclasses.replace(make_report().bottom_line, active_safety_flags=flags)
    text = squash(" ".join(pdf_pages_text(render_pdf(make_report(bottom_line=bottom)))))
    assert "PHQ-9 item 9 > 0 on 2025-03-21" in text
    assert "None active" not in text


def test_unicode_names_do_not_crash() -> None:
    data = render_pdf(
        make_report(
            patient_display_name="Zoë Łukasz 李",
            referring_provider_name="Dr. Šárka Nováková → “Team B”",
        )
    )
    text = " ".join(pdf_pages_text(data))
    assert "Zoë Lukasz ?" in text
    assert "Dr. Šárka Nováková -> “Team B”" in text


def test_empty_series_prints_no_scores_recorded() -> None:
    data = render_pdf(make_report(series=(phq9(points=()), gad7())))
    assert "No scores recorded" in " ".join(pdf_pages_text(data))


def test_pdf_text_sanitiser() -> None:
    assert pdf_text("Zoë") == "Zoë"
    assert pdf_text("Łukasz 李") == "Lukasz ?"
    assert pdf_text("≥ 50 % → response") == ">= 50 % -> response"
    assert pdf_text("ś\x00\tx") == "s  x"
    in_cp1252 = "\u201cquotes\u201d \u2013 dash"
    assert pdf_text(in_cp1252) == in_cp1252


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_report(data_as_of=datetime(2025, 3, 28, 17, 30))  # noqa: DTZ001
    with pytest.raises(ValueError, match="outside 0-27"):
        phq9(points=((at(7), 28),))
    with pytest.raises(ValueError, match="status"):
        dataclasses.replace(make_report().bottom_line, status="better")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- SVG


def parse_svg(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted XML


def test_svg_is_accessible_xml() -> None:
    series = phq9()
    root = parse_svg(render_svg(series, INFUSION_DATES))
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG_NS}title")
    desc = root.find(f"{SVG_NS}desc")
    assert title is not None
    assert "PHQ-9" in (title.text or "")
    assert desc is not None
    assert "19 on 2025-03-07" in (desc.text or "")
    labelled_by = (root.get("aria-labelledby") or "").split()
    assert labelled_by == [title.get("id"), desc.get("id")]
    texts = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {"PHQ-9", "moderately severe", "Remission < 5", "19", "8"} <= texts


def test_svg_one_polyline_point_per_score() -> None:
    series = phq9()
    root = parse_svg(render_svg(series, INFUSION_DATES))
    polylines = list(root.iter(f"{SVG_NS}polyline"))
    assert len(polylines) == 1
    points = (polylines[0].get("points") or "").split()
    assert len(points) == len(series.points)
    assert len(list(root.iter(f"{SVG_NS}circle"))) == len(series.points)
    # lower score = lower on the page (higher y)
    ys = [float(p.split(",")[1]) for p in points]
    assert ys == sorted(ys)


def test_svg_remission_line_only_when_configured() -> None:
    with_line = render_svg(phq9(), INFUSION_DATES)
    assert 'class="remission"' in with_line
    without = render_svg(dataclasses.replace(phq9(), remission_line=None), INFUSION_DATES)
    assert 'class="remission"' not in without
    assert "Remission" not in without


def test_svg_infusion_markers() -> None:
    root = parse_svg(render_svg(phq9(), INFUSION_DATES))
    group = next(g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "infusions")
    assert len(list(group.iter(f"{SVG_NS}line"))) == len(INFUSION_DATES)


def test_svg_escapes_text_and_has_no_scripts() -> None:
    hostile = dataclasses.replace(
        phq9(),
        display_name='<script>alert("x")</script> & co',
        bands=((0, 27, '<img src=x onerror="alert(1)">'),),
    )
    svg = render_svg(hostile, INFUSION_DATES, id_prefix='"><script>')
    assert "<script>" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;" in svg
    root = parse_svg(svg)
    for element in root.iter():
        assert not element.tag.endswith("script")
        assert not element.tag.endswith("style")
        assert not any(name.lower().startswith("on") for name in element.attrib)
        assert "style" not in element.attrib


def test_svg_empty_series() -> None:
    svg = render_svg(phq9(points=()), INFUSION_DATES)
    root = parse_svg(svg)
    assert "No scores recorded" in {t.text for t in root.iter(f"{SVG_NS}text")}
    assert not list(root.iter(f"{SVG_NS}polyline"))


def test_chart_model_is_shared_geometry() -> None:
    model = build_chart(phq9(), INFUSION_DATES, 200.0, 80.0)
    assert len(model.points) == 5
    assert len(model.infusion_markers) == 6
    assert len(model.bands) == 5
    assert all(model.plot_x <= p.x <= model.plot_right for p in model.points)
    assert model.remission_y is not None
    assert model.plot_y < model.remission_y < model.plot_bottom
    # bands tile the plot height without gaps
    assert sum(b.height for b in model.bands) == pytest.approx(model.plot_height)


def test_single_point_and_same_day_series() -> None:
    one = phq9(points=((datetime(2025, 3, 7, 9, tzinfo=UTC), 19),))
    root = parse_svg(render_svg(one, ()))
    assert len((next(root.iter(f"{SVG_NS}polyline")).get("points") or "").split()) == 1
    render_pdf(make_report(series=(one,), infusions=(), infusion_dates=()))
