"""``make bench``: prints each benchmark next to its baseline, in a throwaway database.

Runs against whatever DATABASE_URL says (PostgreSQL when given, else SQLite in a temporary
file), in a database created for the run and dropped afterwards (``bench_<name>``): nothing is
written to the real one, whose audit trail could not be cleaned up. ``make bench``
(bench/make_bench.py) runs it as a section of the load benchmark, in a migrated scratch database
named by BENCH_MICRO_DATABASE that it remakes afterwards. Exits 1 when a row misses its target
in TARGETS.

Add a benchmark by appending a function to BENCHMARKS: it runs inside the prepared database and
returns rows ``(name, microseconds per operation, baseline microseconds or None)``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402 - settings must be chosen first

django.setup()

from django.db import connection  # noqa: E402 - needs django.setup()
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from bench.audit import AUDITED_READ, AUDITED_READ_MINIMUM_RATIO, audit_benchmarks  # noqa: E402
from bench.crypto import encryption_benchmarks  # noqa: E402
from bench.messaging import messaging_benchmarks  # noqa: E402
from bench.reports import MEDIAN as REPORT_MEDIAN  # noqa: E402
from bench.reports import MEDIAN_MINIMUM_RATIO as REPORT_MEDIAN_RATIO  # noqa: E402
from bench.reports import report_benchmarks  # noqa: E402

Row = tuple[str, float, float | None]

BENCHMARKS: list[Callable[[], list[Row]]] = [
    encryption_benchmarks,
    audit_benchmarks,
    messaging_benchmarks,
    report_benchmarks,
]
SCRATCH_DATABASE_VARIABLE = "BENCH_MICRO_DATABASE"
# Minimum throughput relative to the baseline (baseline time / time), by row name.
TARGETS: dict[str, float] = {
    AUDITED_READ: AUDITED_READ_MINIMUM_RATIO,
    REPORT_MEDIAN: REPORT_MEDIAN_RATIO,
}


def run(benchmarks: list[Callable[[], list[Row]]]) -> list[Row]:
    settings_dict = connection.settings_dict
    # make bench (bench/make_bench.py) passes a migrated scratch database it made and remakes
    # afterwards: used as it is (no second migration), and left for it to drop.
    scratch = os.environ.get(SCRATCH_DATABASE_VARIABLE, "")
    with tempfile.TemporaryDirectory() as directory:
        if scratch:
            settings_dict["TEST"]["NAME"] = scratch
        elif connection.vendor == "sqlite":
            # A file, as in development: an in-memory database would hide the cost of commits.
            settings_dict["TEST"]["NAME"] = str(Path(directory) / "bench.sqlite3")
        else:
            settings_dict["TEST"]["NAME"] = f"bench_{settings_dict['NAME']}"
        keepdb = bool(scratch)
        old_config = setup_databases(
            verbosity=0, interactive=False, keepdb=keepdb, serialized_aliases=set()
        )
        try:
            return [row for benchmark in benchmarks for row in benchmark()]
        finally:
            teardown_databases(old_config, verbosity=0, keepdb=keepdb)


def table(rows: list[Row]) -> tuple[str, bool]:
    """The printed table, and whether every row with a target met it."""
    header = ("benchmark", "µs/op", "baseline µs/op", "throughput vs baseline", "target")
    lines: list[tuple[str, ...]] = [header]
    all_met = True
    for name, micros, baseline in rows:
        ratio = baseline / micros if baseline else None
        target = TARGETS.get(name)
        verdict = ""
        if target is not None and ratio is not None:
            met = ratio >= target
            if connection.vendor == "postgresql":
                all_met = all_met and met
                verdict = f">= {target:.2f}x {'ok' if met else 'MISSED'}"
            else:
                # Targets are for the production database; SQLite is the development default
                # (its commits wait for the disk every time), so it is shown but not judged.
                verdict = f">= {target:.2f}x on PostgreSQL ({'met' if met else 'not met'} here)"
        lines.append(
            (
                name,
                f"{micros:,.1f}",
                f"{baseline:,.1f}" if baseline else "-",
                f"{ratio:.2f}x" if ratio is not None else "-",
                verdict,
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered), all_met


def main() -> int:
    where = (
        "a scratch copy made by make bench"
        if os.environ.get(SCRATCH_DATABASE_VARIABLE)
        else "a throwaway copy, created and dropped for this run"
    )
    print(f"Database: {connection.vendor} ({where})")
    text, all_met = table(run(BENCHMARKS))
    print(text)
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
