"""The progress report PDF (CLINICAL.md "A progress report", sections 1-8, in order).

Built with fpdf2 and its core Helvetica font (no font files, no matplotlib): charts are drawn with
native vector rectangles, lines and text from the same ``ChartModel`` the web SVG uses. Core fonts
encode Windows-1252 only, so every string passes through ``pdf_text`` first, which keeps what the
font can show, transliterates what it reasonably can ("→" to "->", "Ł" to "L", "ś" to "s") and
prints "?" for the rest (e.g. CJK) instead of failing.

The output is deterministic: identical input gives identical bytes (creation date = data_as_of,
no clock or randomness), so the stored PDF hash is stable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .chart import (
    AXIS_COLOUR,
    BAND_TEXT_COLOUR,
    LINE_COLOUR,
    MARKER_COLOUR,
    NO_SCORES_MESSAGE,
    PDF_INSETS,
    REMISSION_COLOUR,
    TEXT_COLOUR,
    ChartModel,
    build_chart,
)
from .data import STATUS_LABELS, InfusionRow, InstrumentSeries, ReportInput

FONT = "helvetica"
ENCODING = "cp1252"
PAGE_FORMAT = "letter"
MARGIN = 14.0  # mm
CHART_HEIGHT = 50.0  # mm
NOT_SIGNED = "Not yet signed"

_GREY = (110, 110, 110)
_RULE = (190, 190, 190)
_HEAD_FILL = (228, 234, 242)
_ZEBRA = (246, 247, 249)
_FLAG_COLOUR = (170, 20, 20)
_STATUS_ACCENT: dict[str, tuple[int, int, int]] = {
    "remission": (46, 125, 50),
    "response": (46, 125, 50),
    "partial_response": (191, 144, 0),
    "no_response": (160, 60, 40),
    "undetermined": (120, 120, 120),
}

# Characters outside Windows-1252 that have a faithful plain-text spelling.
_TRANSLITERATIONS: dict[str, str] = {
    "\u2192": "->",
    "\u2190": "<-",
    "\u2194": "<->",
    "\u21d2": "=>",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2260": "!=",
    "\u2248": "~",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2043": "-",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u2007": " ",
    "\u200b": "",
    "\u200d": "",
    "\ufeff": "",
    "\u2713": "v",
    "\u2717": "x",
    "\u0141": "L",
    "\u0142": "l",
    "\u0110": "D",
    "\u0111": "d",
    "\u0131": "i",
    "\u0127": "h",
    "\u0126": "H",
    "\u03bc": "\u00b5",
    "\u2032": "'",
    "\u2033": '"',
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@lru_cache(maxsize=4096)
def _char_for_font(char: str) -> str:
    if char in _TRANSLITERATIONS:
        return _TRANSLITERATIONS[char]
    try:
        char.encode(ENCODING)
    except UnicodeEncodeError:
        pass
    else:
        return char
    # Letters with marks the font lacks: drop the marks ("ś" -> "s").
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    try:
        base.encode(ENCODING)
    except UnicodeEncodeError:
        return "?"
    return base or "?"


def pdf_text(text: str) -> str:
    """Make ``text`` printable with the core font: never raises, never drops a line break."""
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\t", " "))
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError:
        return "".join(_char_for_font(c) for c in text)
    return text


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _fmt_date(day: date | datetime) -> str:
    return f"{day:%Y-%m-%d}"


def _fmt_datetime(moment: datetime) -> str:
    zone = moment.tzname() or ""
    if not zone:
        offset = moment.utcoffset()
        zone = f"UTC{moment:%z}" if offset is not None else ""
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


def _fmt_num(value: float | None, decimals: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{decimals}f}"


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _fmt_bp(systolic: int | None, diastolic: int | None) -> str:
    if systolic is None and diastolic is None:
        return "-"
    return f"{_fmt_int(systolic)}/{_fmt_int(diastolic)}"


def _fmt_change(change: int | None) -> str:
    if change is None:
        return "undefined"
    return f"{change:+d}%" if change else "0%"


class _ReportPDF(FPDF):
    """FPDF with the running header of pages 2+ (so each page names the patient and report)."""

    def __init__(self, running_header: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format=PAGE_FORMAT)
        self._running_header = running_header

    def header(self) -> None:
        if self.page <= 1:
            return
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*_GREY)
        self.cell(0, 4, self._running_header, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0, 0, 0)


class _Renderer:
    def __init__(self, report: ReportInput) -> None:
        self.report = report
        patient = self._patient_line()
        self.pdf = _ReportPDF(
            pdf_text(
                f"{report.clinic_name} - progress report {report.report_id} v{report.version}"
                f" - {patient}"
            )
        )
        pdf = self.pdf
        pdf.str_alias_nb_pages = ""  # no "{nb}" substitution inside clinical text
        pdf.core_fonts_encoding = ENCODING
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_auto_page_break(auto=True, margin=MARGIN + 4)
        pdf.set_creation_date(report.data_as_of)
        pdf.set_title(pdf_text(f"Progress report {report.report_id} v{report.version}"))
        pdf.set_author(pdf_text(report.clinic_name))
        pdf.set_lang("en")
        pdf.set_display_mode(zoom="fullwidth")

    # ------------------------------------------------------------------ helpers

    def _patient_line(self) -> str:
        r = self.report
        born = f" (born {r.patient_birth_year})" if r.patient_birth_year else ""
        return f"Patient: {r.patient_display_name}{born}"

    @property
    def width(self) -> float:
        return self.pdf.epw

    def font(self, size: float, style: str = "") -> None:
        self.pdf.set_font(FONT, style, size)

    def heading(self, title: str, *, keep_with: float = 20.0) -> None:
        pdf = self.pdf
        if pdf.will_page_break(8 + keep_with):
            pdf.add_page()
        pdf.ln(2.5)
        self.font(11.5, "B")
        pdf.set_text_color(31, 78, 121)
        pdf.cell(0, 6, pdf_text(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(31, 78, 121)
        pdf.set_line_width(0.3)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + self.width, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_text_color(0, 0, 0)

    def subheading(self, title: str) -> None:
        pdf = self.pdf
        if pdf.will_page_break(14):
            pdf.add_page()
        pdf.ln(1)
        self.font(9, "B")
        pdf.cell(0, 5, pdf_text(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str, size: float = 9, style: str = "", line: float = 4.2) -> None:
        self.font(size, style)
        self.pdf.multi_cell(0, line, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")

    def label_value(self, label: str, value: str, label_w: float = 44.0, size: float = 9) -> None:
        pdf = self.pdf
        x = pdf.get_x()
        self.font(size, "B")
        pdf.cell(label_w, 4.6, pdf_text(label))
        self.font(size)
        pdf.multi_cell(
            self.width - (x - pdf.l_margin) - label_w,
            4.6,
            pdf_text(value),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            align="L",
        )

    def wrap(self, text: str, width: float) -> list[str]:
        """Greedy word wrap with the current font (long words are split)."""
        measure = self.pdf.get_string_width
        if "\n" not in text and measure(text) <= width:
            return [text]
        lines: list[str] = []
        for para in text.split("\n"):
            line = ""
            for word in para.split():
                candidate = f"{line} {word}" if line else word
                if measure(candidate) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                while len(word) > 1 and measure(word) > width:
                    cut = len(word) - 1
                    while cut > 1 and measure(word[:cut]) > width:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                line = word
            lines.append(line)
        return lines or [""]

    def table(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        col_widths: Sequence[float],
        *,
        size: float = 7.5,
        align: Sequence[str] | None = None,
        fill_last: bool = True,
    ) -> None:
        """A light table (header row repeated after a page break), drawn with text and rules.

        fpdf2's own ``table()`` lays out every cell twice with ``multi_cell`` and was most of the
        render time; this measures and wraps with the font metrics and writes plain text ops.
        ``col_widths`` are in mm; with ``fill_last`` the last column takes the remaining width.
        """
        pdf = self.pdf
        widths = list(col_widths)
        if fill_last:
            widths[-1] = self.width - sum(widths[:-1])
        aligns = list(align) if align else ["L"] * len(widths)
        pad_x, pad_y, line_h = 1.0, 0.9, 3.4
        x0 = pdf.l_margin
        total_w = sum(widths)

        def layout(cells: Sequence[str], style: str) -> tuple[list[list[str]], float]:
            self.font(size, style)
            wrapped = [
                self.wrap(pdf_text(cell), w - 2 * pad_x)
                for cell, w in zip(cells, widths, strict=True)
            ]
            return wrapped, max(len(lines) for lines in wrapped) * line_h + 2 * pad_y

        def draw(
            wrapped: list[list[str]],
            height: float,
            style: str,
            fill: tuple[int, int, int] | None,
        ) -> None:
            y = pdf.get_y()
            if fill is not None:
                pdf.set_fill_color(*fill)
                pdf.rect(x0, y, total_w, height, style="F")
            self.font(size, style)
            x = x0
            for lines, w, a in zip(wrapped, widths, aligns, strict=True):
                for i, line in enumerate(lines):
                    if not line:
                        continue
                    text_x = x + pad_x
                    if a != "L":
                        text_w = pdf.get_string_width(line)
                        text_x = x + w - pad_x - text_w if a == "R" else x + (w - text_w) / 2
                    pdf.text(text_x, y + pad_y + i * line_h + line_h * 0.74, line)
                x += w
            pdf.line(x0, y + height, x0 + total_w, y + height)
            pdf.set_y(y + height)

        head, head_h = layout(headings, "B")
        laid_out = [layout(row, "") for row in rows]
        first_h = laid_out[0][1] if laid_out else 0.0
        if pdf.will_page_break(head_h + first_h):
            pdf.add_page()
        pdf.set_draw_color(*_RULE)
        pdf.set_line_width(0.15)
        pdf.set_text_color(0, 0, 0)
        draw(head, head_h, "B", _HEAD_FILL)
        for index, (wrapped, height) in enumerate(laid_out):
            if pdf.will_page_break(height):
                pdf.add_page()
                pdf.set_draw_color(*_RULE)
                pdf.set_line_width(0.15)
                pdf.set_text_color(0, 0, 0)
                draw(head, head_h, "B", _HEAD_FILL)
            draw(wrapped, height, "", _ZEBRA if index % 2 else None)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_x(pdf.l_margin)

    # ------------------------------------------------------------------ sections

    def section_header(self) -> None:
        r = self.report
        pdf = self.pdf
        pdf.add_page()
        top = pdf.get_y()
        self.font(15, "B")
        pdf.multi_cell(
            self.width * 0.62, 7, pdf_text(r.clinic_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        after_name = pdf.get_y()
        pdf.set_xy(pdf.l_margin + self.width * 0.62, top)
        self.font(12, "B")
        kind = "Final" if r.kind == "final" else "Interim"
        pdf.cell(self.width * 0.38, 7, f"{kind} progress report", align="R")
        pdf.set_xy(pdf.l_margin + self.width * 0.62, top + 7)
        self.font(8.5)
        pdf.cell(
            self.width * 0.38,
            4.5,
            pdf_text(f"Report {r.report_id}, version {r.version}"),
            align="R",
        )
        pdf.set_xy(pdf.l_margin, max(after_name, top + 12) + 1)

        self.label_value("Referring provider", r.referring_provider_name, label_w=34)
        self.label_value("Patient", self._patient_line().removeprefix("Patient: "), label_w=34)
        self.label_value(
            "Period", f"{_fmt_date(r.period_start)} to {_fmt_date(r.period_end)}", label_w=34
        )
        self.label_value("Data as of", _fmt_datetime(r.data_as_of), label_w=34)
        if not r.interpretation.is_signed:
            self.font(8.5, "B")
            pdf.set_text_color(*_FLAG_COLOUR)
            pdf.cell(
                0,
                4.6,
                "DRAFT: clinician interpretation not yet signed",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.set_text_color(0, 0, 0)
        pdf.ln(1.5)
        self.font(7.5, "I")
        pdf.set_fill_color(245, 245, 245)
        pdf.set_text_color(60, 60, 60)
        pdf.multi_cell(
            0,
            3.6,
            pdf_text(r.confidentiality_notice),
            fill=True,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            align="L",
            padding=2,
        )
        pdf.set_text_color(0, 0, 0)

    def section_bottom_line(self) -> None:
        r = self.report
        b = r.bottom_line
        pdf = self.pdf
        self.heading("Bottom line", keep_with=40)
        primary = r.primary_series
        name = primary.display_name if primary else b.primary_instrument_id
        pdf.ln(1.5)
        top = pdf.get_y()
        pdf.set_x(pdf.l_margin + 4)
        self.font(14, "B")
        pdf.cell(0, 8, STATUS_LABELS[b.status], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        inner = 4.0
        rows: list[tuple[str, str]] = []
        baseline = _fmt_int(b.baseline)
        latest = _fmt_int(b.latest)
        change = _fmt_change(b.change_percent)
        if b.change_percent is None and b.baseline == 0:
            change = "undefined (baseline 0: response cannot be assessed)"
        rows.append(
            (f"{name} (primary)", f"baseline {baseline} -> latest {latest}   change {change}")
        )
        rows.append(
            (
                "Infusions completed / planned",
                f"{b.infusions_completed} / {b.infusions_planned}",
            )
        )
        for label, value in rows:
            pdf.set_x(pdf.l_margin + inner)
            self.label_value(label, value, label_w=52, size=9.5)
        pdf.set_x(pdf.l_margin + inner)
        if b.active_safety_flags:
            pdf.set_text_color(*_FLAG_COLOUR)
            self.label_value("Active safety flags", "; ".join(b.active_safety_flags), 52, 9.5)
            pdf.set_text_color(0, 0, 0)
        else:
            self.label_value("Active safety flags", "None active", 52, 9.5)
        pdf.set_x(pdf.l_margin + inner)
        self.label_value("Next planned step", b.next_planned_step or "-", 52, 9.5)
        bottom = pdf.get_y() + 1.5
        pdf.set_draw_color(*_RULE)
        pdf.set_line_width(0.3)
        pdf.rect(pdf.l_margin, top - 1, self.width, bottom - top + 1)
        pdf.set_fill_color(*_STATUS_ACCENT[b.status])
        pdf.rect(pdf.l_margin, top - 1, 1.6, bottom - top + 1, style="F")
        pdf.set_y(bottom + 1)

    def section_score_trends(self) -> None:
        r = self.report
        pdf = self.pdf
        self.heading("Score trends", keep_with=CHART_HEIGHT)
        if not r.series:
            self.paragraph(NO_SCORES_MESSAGE)
            return
        infusion_dates = r.chart_infusion_dates
        for series in r.series:
            if pdf.will_page_break(CHART_HEIGHT + 2):
                pdf.add_page()
            model = build_chart(series, infusion_dates, self.width, CHART_HEIGHT, PDF_INSETS)
            self.draw_chart(model, pdf.l_margin, pdf.get_y())
            pdf.set_y(pdf.get_y() + CHART_HEIGHT + 2)
        self.score_table(r.series, infusion_dates)

    def score_table(
        self, all_series: Sequence[InstrumentSeries], infusion_dates: Sequence[date]
    ) -> None:
        with_scores = [s for s in all_series if s.points]
        if not with_scores:
            return
        self.subheading("Scores by date")
        by_day: dict[date, dict[str, int]] = {}
        for series in with_scores:
            for when, score in series.points:
                by_day.setdefault(when.date(), {})[series.instrument_id] = score
        infusion_no = {day: n for n, day in enumerate(infusion_dates, start=1)}
        rows = []
        for day in sorted(by_day):
            values = [_fmt_date(day), str(infusion_no[day]) if day in infusion_no else ""]
            for series in with_scores:
                found = by_day[day].get(series.instrument_id)
                if found is None:
                    values.append("")
                else:
                    band = series.band_for(found)
                    values.append(f"{found} ({band})" if band else str(found))
            rows.append(values)
        headings = ["Date", "Infusion", *(s.display_name for s in with_scores)]
        widths = [22.0, 15.0, *([38.0] * len(with_scores))]
        aligns = ["L", "C", *(["L"] * len(with_scores))]
        self.table(headings, rows, widths, align=aligns, fill_last=False)

    def section_treatment(self) -> None:
        r = self.report
        self.heading("Treatment course", keep_with=20)
        if not r.infusions:
            self.paragraph("No infusions recorded in this period.")
            return
        rows = [
            [
                str(n),
                _fmt_date(row.date),
                _fmt_num(row.weight_kg, 1),
                _fmt_num(row.mg_per_kg, 2),
                _fmt_num(row.total_mg, 1),
                _fmt_int(row.duration_min),
                row.dose_change_note or "",
            ]
            for n, row in enumerate(r.infusions, start=1)
        ]
        self.table(
            [
                "#",
                "Date",
                "Weight (kg)",
                "Dose (mg/kg)",
                "Total (mg)",
                "Duration (min)",
                "Dose change and reason",
            ],
            rows,
            [7, 19, 17, 19, 16, 19, 0],
            align=["C", "L", "R", "R", "R", "R", "L"],
        )

    def section_safety(self) -> None:
        r = self.report
        self.heading("Safety and tolerability", keep_with=20)
        if not r.infusions:
            self.paragraph("No infusion sessions recorded in this period.")
            return
        rows = [self._safety_row(n, row) for n, row in enumerate(r.infusions, start=1)]
        self.table(
            [
                "#",
                "Date",
                "BP pre",
                "BP peak",
                "BP post",
                "HR pre/peak/post",
                "Lowest SpO2 (%)",
                "CADSS peak",
                "Adverse events",
            ],
            rows,
            [7, 19, 14, 14, 14, 22, 14, 13, 0],
            align=["C", "L", "C", "C", "C", "C", "C", "C", "L"],
        )
        self.font(7)
        self.pdf.set_text_color(*_GREY)
        self.pdf.cell(0, 4, "BP in mmHg, HR in beats/min.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_text_color(0, 0, 0)

    @staticmethod
    def _safety_row(number: int, row: InfusionRow) -> list[str]:
        hr = "/".join(_fmt_int(v) for v in (row.pre_hr, row.peak_hr, row.post_hr))
        return [
            str(number),
            _fmt_date(row.date),
            _fmt_bp(row.pre_systolic, row.pre_diastolic),
            _fmt_bp(row.peak_systolic, row.peak_diastolic),
            _fmt_bp(row.post_systolic, row.post_diastolic),
            "-" if hr == "-/-/-" else hr,
            _fmt_int(row.lowest_spo2),
            _fmt_int(row.cadss_peak),
            row.adverse_events or "None recorded",
        ]

    def section_interpretation(self) -> None:
        interp = self.report.interpretation
        pdf = self.pdf
        self.heading("Clinician interpretation and recommendations", keep_with=16)
        if interp.text.strip():
            self.paragraph(interp.text, size=9.5, line=4.6)
        else:
            self.font(9.5, "I")
            pdf.cell(0, 5, "No interpretation entered yet.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
        if interp.is_signed and interp.signed_at is not None:
            self.label_value(
                "Signed by",
                f"{interp.signer_name}, {_fmt_datetime(interp.signed_at)}",
                label_w=20,
            )
        else:
            self.font(9.5, "B")
            pdf.set_text_color(*_FLAG_COLOUR)
            pdf.cell(0, 5, NOT_SIGNED, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_text_color(0, 0, 0)

    def section_methods(self) -> None:
        r = self.report
        m = r.methods
        self.heading("Methods", keep_with=24)
        self.subheading("Instruments")
        if r.series:
            for series in r.series:
                bands = ", ".join(f"{low}-{high} {label}" for low, high, label in series.bands)
                text = f"total 0-{series.max_score}"
                if bands:
                    text += f"; bands {bands}"
                if series.remission_line is not None:
                    text += f"; {series.remission_text}"
                self.label_value(series.display_name, text, label_w=24, size=8.5)
        else:
            self.paragraph("No instruments in this report.", size=8.5)
        self.subheading("Definitions and thresholds used")
        if m.thresholds:
            self.table(
                ["Term", "Definition or value used"],
                [list(t) for t in m.thresholds],
                [44, 0],
                size=8,
            )
        else:
            self.paragraph("None recorded.", size=8.5)
        self.subheading("Baseline rule")
        self.paragraph(m.baseline_rule or "-", size=8.5)
        if m.notes:
            self.subheading("Notes")
            self.paragraph(m.notes, size=8.5)

    def section_reply(self) -> None:
        r = self.report
        self.heading("How to reply", keep_with=12)
        self.paragraph(r.how_to_reply, size=9)
        self.paragraph(f"Quote report {r.report_id} (version {r.version}).", size=9)
        if r.clinic_contact:
            self.paragraph(r.clinic_contact, size=9)

    def footers(self) -> None:
        """Drawn last, when the page count is known ("Page 1 of 3")."""
        pdf = self.pdf
        r = self.report
        total = pdf.pages_count
        left = pdf_text(f"Confidential - report {r.report_id} v{r.version}")
        for number in range(1, total + 1):
            pdf.page = number
            self.font(7.5)
            pdf.set_text_color(*_GREY)
            y = pdf.h - MARGIN + 4
            pdf.text(pdf.l_margin, y, left)
            right = f"Page {number} of {total}"
            pdf.text(pdf.l_margin + self.width - pdf.get_string_width(right), y, right)
        pdf.set_text_color(0, 0, 0)

    # ------------------------------------------------------------------ chart

    def draw_chart(self, model: ChartModel, ox: float, oy: float) -> None:
        pdf = self.pdf

        def text_at(x: float, y: float, text: str, anchor: str = "start") -> None:
            text = pdf_text(text)
            if anchor != "start":
                w = pdf.get_string_width(text)
                x -= w if anchor == "end" else w / 2
            pdf.text(ox + x, oy + y, text)

        # title row
        self.font(9, "B")
        pdf.set_text_color(*_hex_rgb(TEXT_COLOUR))
        text_at(model.plot_x, 3.5, model.title)
        if model.infusion_markers:
            self.font(6.5)
            pdf.set_text_color(*_hex_rgb(MARKER_COLOUR))
            text_at(model.plot_right, 3.5, model.marker_legend, "end")

        # severity bands with their labels outside the plot, on the right
        self.font(6)
        pdf.set_text_color(*_hex_rgb(BAND_TEXT_COLOUR))
        for band in model.bands:
            pdf.set_fill_color(*_hex_rgb(band.fill))
            pdf.rect(ox + band.x, oy + band.y, band.width, band.height, style="F")
            if band.height >= 2.6:
                text_at(band.x + band.width + 1.2, band.y + band.height / 2 + 0.8, band.label)

        pdf.set_draw_color(*_hex_rgb(AXIS_COLOUR))
        pdf.set_line_width(0.2)
        pdf.rect(ox + model.plot_x, oy + model.plot_y, model.plot_width, model.plot_height)

        self.font(6.5)
        pdf.set_text_color(*_hex_rgb(TEXT_COLOUR))
        for tick in model.y_ticks:
            pdf.line(
                ox + model.plot_x - 1, oy + tick.position, ox + model.plot_x, oy + tick.position
            )
            text_at(model.plot_x - 1.5, tick.position + 0.9, tick.label, "end")

        if model.empty:
            self.font(9, "I")
            text_at(
                model.plot_x + model.plot_width / 2,
                model.plot_y + model.plot_height / 2 + 1,
                NO_SCORES_MESSAGE,
                "middle",
            )
            return

        for tick in model.x_ticks:
            pdf.line(
                ox + tick.position,
                oy + model.plot_bottom,
                ox + tick.position,
                oy + model.plot_bottom + 1,
            )
            text_at(tick.position, model.plot_bottom + 3.6, tick.label, "middle")

        if model.remission_y is not None:
            pdf.set_draw_color(*_hex_rgb(REMISSION_COLOUR))
            pdf.set_line_width(0.4)
            pdf.set_dash_pattern(dash=1.6, gap=0.9)
            pdf.line(
                ox + model.plot_x,
                oy + model.remission_y,
                ox + model.plot_right,
                oy + model.remission_y,
            )
            pdf.set_dash_pattern()
            self.font(6)
            pdf.set_text_color(*_hex_rgb(REMISSION_COLOUR))
            text_at(model.plot_x + 1.2, model.remission_y - 0.9, model.remission_label)

        if model.infusion_markers:
            pdf.set_draw_color(*_hex_rgb(MARKER_COLOUR))
            pdf.set_line_width(0.2)
            pdf.set_dash_pattern(dash=0.6, gap=0.6)
            self.font(6)
            pdf.set_text_color(*_hex_rgb(MARKER_COLOUR))
            for marker in model.infusion_markers:
                pdf.line(ox + marker.x, oy + model.plot_y, ox + marker.x, oy + model.plot_bottom)
                text_at(marker.x, model.plot_y - 1.0, str(marker.number), "middle")
            pdf.set_dash_pattern()

        colour = _hex_rgb(LINE_COLOUR)
        pdf.set_draw_color(*colour)
        pdf.set_fill_color(*colour)
        pdf.set_line_width(0.55)
        if len(model.points) > 1:
            pdf.polyline([(ox + p.x, oy + p.y) for p in model.points], style="D")
        self.font(6.5, "B")
        pdf.set_text_color(*colour)
        radius = 0.75
        for p in model.points:
            pdf.circle(ox + p.x, oy + p.y, radius, style="F")
            text_at(p.x, p.y - 1.6, str(p.score), "middle")
        pdf.set_text_color(0, 0, 0)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_line_width(0.2)

    # ------------------------------------------------------------------ document

    def render(self) -> bytes:
        self.section_header()
        self.section_bottom_line()
        self.section_score_trends()
        self.section_treatment()
        self.section_safety()
        self.section_interpretation()
        self.section_methods()
        self.section_reply()
        self.footers()
        return bytes(self.pdf.output())


def render_pdf(report: ReportInput) -> bytes:
    """Render the progress report; identical input gives identical bytes."""
    return _Renderer(report).render()


__all__ = ["NOT_SIGNED", "pdf_text", "render_pdf"]
