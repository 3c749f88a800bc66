"""Report rendering: plain frozen dataclasses in, SVG text or PDF bytes out. No Django here.

``render_pdf`` and ``pdf_text`` load fpdf2 on first use, so web code that only needs
``render_svg`` does not pay for importing the PDF library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chart import ChartModel, build_chart, render_svg
from .data import (
    DEFAULT_CONFIDENTIALITY_NOTICE,
    DEFAULT_HOW_TO_REPLY,
    BottomLine,
    InfusionRow,
    InstrumentSeries,
    Interpretation,
    Methods,
    ReportInput,
    ScoreBand,
)

if TYPE_CHECKING:
    from .pdf import pdf_text, render_pdf

_LAZY = {"render_pdf", "pdf_text"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import pdf

        return getattr(pdf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_CONFIDENTIALITY_NOTICE",
    "DEFAULT_HOW_TO_REPLY",
    "BottomLine",
    "ChartModel",
    "InfusionRow",
    "InstrumentSeries",
    "Interpretation",
    "Methods",
    "ReportInput",
    "ScoreBand",
    "build_chart",
    "pdf_text",
    "render_pdf",
    "render_svg",
]
