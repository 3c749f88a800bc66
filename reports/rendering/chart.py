"""Score-trend chart: one geometric model, two renderers (SVG for web pages, PDF vector ops).

``build_chart`` computes everything once (scale, axes, severity bands, remission line, infusion
markers, polyline) in abstract units with the origin at the top left and y growing downwards, which
is how both SVG and fpdf2 place things. ``render_svg`` writes it as an accessible SVG string; the
PDF renderer (``pdf.py``) draws the same model with rectangles, lines and text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from xml.sax.saxutils import escape  # escapes text written into SVG, parses nothing  # nosec B406

from .data import InstrumentSeries

NO_SCORES_MESSAGE = "No scores recorded"

# Light fills from "good" (green) to "bad" (red); readable under black text and in greyscale.
BAND_PALETTE: tuple[str, ...] = ("#e3f1e4", "#eef5dc", "#fbf6d9", "#fce8d4", "#f9dcd6")
LINE_COLOUR = "#1f4e79"
REMISSION_COLOUR = "#2e7d32"
MARKER_COLOUR = "#7a7a7a"
AXIS_COLOUR = "#555555"
TEXT_COLOUR = "#222222"
BAND_TEXT_COLOUR = "#666666"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TICK_STEPS_DAYS = (1, 2, 3, 7, 14, 28, 56, 91, 182, 364)


@dataclass(frozen=True, slots=True)
class Insets:
    """Space around the plot area for tick labels and marker numbers, in the caller's units."""

    left: float
    top: float
    right: float
    bottom: float


# Band labels sit in the right inset, outside the plot, so they never hide a score.
SVG_INSETS = Insets(left=34.0, top=32.0, right=104.0, bottom=24.0)  # px
PDF_INSETS = Insets(left=8.0, top=9.0, right=24.0, bottom=6.0)  # mm


@dataclass(frozen=True, slots=True)
class BandRect:
    x: float
    y: float
    width: float
    height: float
    label: str
    fill: str  # "#rrggbb"


@dataclass(frozen=True, slots=True)
class Tick:
    position: float  # y for the score axis, x for the time axis
    label: str


@dataclass(frozen=True, slots=True)
class InfusionMarker:
    x: float
    number: int  # 1-based infusion number
    when: date


@dataclass(frozen=True, slots=True)
class PlotPoint:
    x: float
    y: float
    score: int
    when: datetime


@dataclass(frozen=True, slots=True)
class ChartModel:
    title: str
    description: str  # full text alternative for screen readers
    width: float
    height: float
    plot_x: float
    plot_y: float
    plot_width: float
    plot_height: float
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    bands: tuple[BandRect, ...]
    remission_y: float | None
    remission_label: str
    infusion_markers: tuple[InfusionMarker, ...]
    points: tuple[PlotPoint, ...]

    @property
    def empty(self) -> bool:
        return not self.points

    @property
    def marker_legend(self) -> str:
        count = len(self.infusion_markers)
        if not count:
            return ""
        numbers = "1" if count == 1 else f"1-{count}"
        return f"Dashed lines {numbers}: infusion dates"

    @property
    def plot_bottom(self) -> float:
        return self.plot_y + self.plot_height

    @property
    def plot_right(self) -> float:
        return self.plot_x + self.plot_width


def _day_value(when: date | datetime) -> float:
    """Days on a continuous axis: the ordinal of the (local) date plus the time of day."""
    if isinstance(when, datetime):
        seconds = when.hour * 3600 + when.minute * 60 + when.second
        return when.toordinal() + seconds / 86400.0
    return when.toordinal() + 0.5  # a date without a time sits at midday


def _short_date(day: date) -> str:
    return f"{day.day:02d} {_MONTHS[day.month - 1]}"


def _band_fill(index: int, count: int) -> str:
    if count <= 1:
        return BAND_PALETTE[0]
    slot = round(index * (len(BAND_PALETTE) - 1) / (count - 1))
    return BAND_PALETTE[slot]


def _describe(series: InstrumentSeries, infusion_dates: Sequence[date]) -> str:
    name = series.display_name
    if not series.points:
        return f"{name}: {NO_SCORES_MESSAGE}."
    parts = []
    for when, score in series.points:
        band = series.band_for(score)
        parts.append(f"{score} on {when:%Y-%m-%d}" + (f" ({band})" if band else ""))
    first, last = series.points[0][0], series.points[-1][0]
    text = (
        f"{name} scores (0-{series.max_score}, lower is better), {len(series.points)} recorded "
        f"from {first:%Y-%m-%d} to {last:%Y-%m-%d}: " + "; ".join(parts) + "."
    )
    if series.remission_line is not None:
        text += f" {series.remission_text}."
    if infusion_dates:
        days = ", ".join(f"{d:%Y-%m-%d}" for d in infusion_dates)
        text += f" Infusions ({len(infusion_dates)}): {days}."
    return text


def _x_ticks(lo: float, hi: float, scale_x: float, origin_x: float) -> tuple[Tick, ...]:
    span = hi - lo
    step = _TICK_STEPS_DAYS[-1]
    for candidate in _TICK_STEPS_DAYS:
        if span / candidate <= 6:
            step = candidate
            break
    first = math.ceil(lo - 0.5)  # ticks at midday of whole days
    ticks = []
    day = first
    while day + 0.5 <= hi:
        if day + 0.5 >= lo:
            x = origin_x + (day + 0.5 - lo) * scale_x
            ticks.append(Tick(position=x, label=_short_date(date.fromordinal(day))))
        day += step
    return tuple(ticks)


def build_chart(
    series: InstrumentSeries,
    infusion_dates: Sequence[date],
    width: float,
    height: float,
    insets: Insets = SVG_INSETS,
) -> ChartModel:
    """Lay out one instrument's chart in a ``width`` x ``height`` box (any unit)."""
    plot_x = insets.left
    plot_y = insets.top
    plot_w = max(width - insets.left - insets.right, 1.0)
    plot_h = max(height - insets.top - insets.bottom, 1.0)
    max_score = series.max_score

    def y_of(score: float) -> float:
        return plot_y + plot_h - (score / max_score) * plot_h

    bands = []
    ordered = sorted(series.bands)
    for index, (low, high, label) in enumerate(ordered):
        top_value = min(high + 1, max_score)  # integer scores: 0-4 and 5-9 touch at 5
        if index == len(ordered) - 1:
            top_value = max(top_value, high)
        y_top = y_of(top_value)
        bands.append(
            BandRect(
                x=plot_x,
                y=y_top,
                width=plot_w,
                height=y_of(low) - y_top,
                label=label,
                fill=_band_fill(index, len(ordered)),
            )
        )

    tick_values = sorted({0, max_score, *(low for low, _high, _label in ordered)})
    y_ticks = tuple(Tick(position=y_of(v), label=str(v)) for v in tick_values)

    remission_y = y_of(series.remission_line) if series.remission_line is not None else None
    title = series.display_name
    description = _describe(series, infusion_dates)

    if not series.points:
        return ChartModel(
            title=title,
            description=description,
            width=width,
            height=height,
            plot_x=plot_x,
            plot_y=plot_y,
            plot_width=plot_w,
            plot_height=plot_h,
            y_ticks=y_ticks,
            x_ticks=(),
            bands=tuple(bands),
            remission_y=remission_y,
            remission_label=series.remission_text,
            infusion_markers=(),
            points=(),
        )

    values = [_day_value(when) for when, _score in series.points]
    values += [_day_value(day) for day in infusion_dates]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.04, 0.5)
    lo, hi = lo - pad, hi + pad
    scale_x = plot_w / (hi - lo)

    def x_of(when: date | datetime) -> float:
        return plot_x + (_day_value(when) - lo) * scale_x

    points = tuple(
        PlotPoint(x=x_of(when), y=y_of(score), score=score, when=when)
        for when, score in series.points
    )
    markers = tuple(
        InfusionMarker(x=x_of(day), number=number, when=day)
        for number, day in enumerate(infusion_dates, start=1)
    )
    return ChartModel(
        title=title,
        description=description,
        width=width,
        height=height,
        plot_x=plot_x,
        plot_y=plot_y,
        plot_width=plot_w,
        plot_height=plot_h,
        y_ticks=y_ticks,
        x_ticks=_x_ticks(lo, hi, scale_x, plot_x),
        bands=tuple(bands),
        remission_y=remission_y,
        remission_label=series.remission_text,
        infusion_markers=markers,
        points=points,
    )


# --------------------------------------------------------------------------------------------
# SVG
# --------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """Compact, deterministic number formatting for SVG attributes."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _id_part(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug or "chart"


def render_svg(
    series: InstrumentSeries,
    infusion_dates: Sequence[date],
    width: float = 640,
    height: float = 260,
    *,
    id_prefix: str = "",
) -> str:
    """An accessible, script-free SVG of one instrument's trend (for web pages).

    Styling uses presentation attributes only (no ``style`` attributes or elements), so it works
    under a strict Content-Security-Policy. ``id_prefix`` keeps ids unique when several charts of
    the same instrument share a page.
    """
    model = build_chart(series, infusion_dates, width, height, SVG_INSETS)
    return svg_from_model(model, id_base=_id_part(f"{id_prefix}-{series.instrument_id}"))


def svg_from_model(model: ChartModel, id_base: str = "chart") -> str:
    title_id = f"{id_base}-title"
    desc_id = f"{id_base}-desc"
    out: list[str] = []
    add = out.append
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(model.width)}" '
        f'height="{_n(model.height)}" viewBox="0 0 {_n(model.width)} {_n(model.height)}" '
        f'role="img" aria-labelledby="{title_id} {desc_id}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="11" fill="{TEXT_COLOUR}">'
    )
    add(f'<title id="{title_id}">{escape(model.title)} score trend</title>')
    add(f'<desc id="{desc_id}">{escape(model.description)}</desc>')
    add(f'<rect x="0" y="0" width="{_n(model.width)}" height="{_n(model.height)}" fill="#ffffff"/>')
    add(f'<text x="{_n(model.plot_x)}" y="13" font-size="13" font-weight="bold">')
    add(f"{escape(model.title)}</text>")

    add('<g class="bands">')
    for band in model.bands:
        add(
            f'<rect x="{_n(band.x)}" y="{_n(band.y)}" width="{_n(band.width)}" '
            f'height="{_n(band.height)}" fill="{band.fill}"/>'
        )
        if band.height >= 10:
            add(
                f'<text x="{_n(band.x + band.width + 5)}" y="{_n(band.y + band.height / 2 + 3.5)}" '
                f'font-size="9" fill="{BAND_TEXT_COLOUR}">{escape(band.label)}</text>'
            )
    add("</g>")

    add(
        f'<rect x="{_n(model.plot_x)}" y="{_n(model.plot_y)}" width="{_n(model.plot_width)}" '
        f'height="{_n(model.plot_height)}" fill="none" stroke="{AXIS_COLOUR}" stroke-width="1"/>'
    )
    add('<g class="y-axis" font-size="9" text-anchor="end">')
    for tick in model.y_ticks:
        add(
            f'<line x1="{_n(model.plot_x - 3)}" y1="{_n(tick.position)}" x2="{_n(model.plot_x)}" '
            f'y2="{_n(tick.position)}" stroke="{AXIS_COLOUR}"/>'
            f'<text x="{_n(model.plot_x - 5)}" y="{_n(tick.position + 3)}">'
            f"{escape(tick.label)}</text>"
        )
    add("</g>")

    if model.empty:
        add(
            f'<text class="empty" x="{_n(model.plot_x + model.plot_width / 2)}" '
            f'y="{_n(model.plot_y + model.plot_height / 2 + 4)}" text-anchor="middle" '
            f'font-size="12">{escape(NO_SCORES_MESSAGE)}</text>'
        )
        add("</svg>")
        return "".join(out)

    add('<g class="x-axis" font-size="9" text-anchor="middle">')
    for tick in model.x_ticks:
        add(
            f'<line x1="{_n(tick.position)}" y1="{_n(model.plot_bottom)}" '
            f'x2="{_n(tick.position)}" y2="{_n(model.plot_bottom + 3)}" stroke="{AXIS_COLOUR}"/>'
            f'<text x="{_n(tick.position)}" y="{_n(model.plot_bottom + 13)}">'
            f"{escape(tick.label)}</text>"
        )
    add("</g>")

    if model.remission_y is not None:
        add(
            f'<g class="remission"><line x1="{_n(model.plot_x)}" y1="{_n(model.remission_y)}" '
            f'x2="{_n(model.plot_right)}" y2="{_n(model.remission_y)}" '
            f'stroke="{REMISSION_COLOUR}" stroke-width="1.5" stroke-dasharray="6 3"/>'
            f'<text x="{_n(model.plot_x + 4)}" y="{_n(model.remission_y - 3)}" font-size="9" '
            f'fill="{REMISSION_COLOUR}">{escape(model.remission_label)}</text></g>'
        )

    if model.infusion_markers:
        add('<g class="infusions" font-size="9" text-anchor="middle">')
        add(
            f'<text x="{_n(model.plot_right)}" y="13" text-anchor="end" fill="{MARKER_COLOUR}">'
            f"{escape(model.marker_legend)}</text>"
        )
        for marker in model.infusion_markers:
            add(
                f'<line x1="{_n(marker.x)}" y1="{_n(model.plot_y)}" x2="{_n(marker.x)}" '
                f'y2="{_n(model.plot_bottom)}" stroke="{MARKER_COLOUR}" stroke-width="0.8" '
                f'stroke-dasharray="2 2"/>'
                f'<text x="{_n(marker.x)}" y="{_n(model.plot_y - 5)}" fill="{MARKER_COLOUR}">'
                f"{marker.number}<title>Infusion {marker.number}: {marker.when:%Y-%m-%d}</title>"
                f"</text>"
            )
        add("</g>")

    coords = " ".join(f"{_n(p.x)},{_n(p.y)}" for p in model.points)
    add(
        f'<polyline class="scores" points="{coords}" fill="none" stroke="{LINE_COLOUR}" '
        f'stroke-width="2" stroke-linejoin="round"/>'
    )
    add(f'<g class="points" font-size="9" text-anchor="middle" fill="{LINE_COLOUR}">')
    for point in model.points:
        label = f"{point.score} on {point.when:%Y-%m-%d}"
        add(
            f'<circle cx="{_n(point.x)}" cy="{_n(point.y)}" r="3"><title>{escape(label)}</title>'
            f"</circle>"
            f'<text x="{_n(point.x)}" y="{_n(point.y - 6)}">{point.score}</text>'
        )
    add("</g>")
    add("</svg>")
    return "".join(out)


__all__ = [
    "NO_SCORES_MESSAGE",
    "PDF_INSETS",
    "SVG_INSETS",
    "BandRect",
    "ChartModel",
    "InfusionMarker",
    "Insets",
    "PlotPoint",
    "Tick",
    "build_chart",
    "render_svg",
    "svg_from_model",
]
