"""Figures of the load benchmark: per-endpoint statistics, the targets, the printed table and
``BENCHMARKS.md``. Pure functions of the samples; no Django."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench.load import (
    BARE_DETAIL,
    BARE_LIST,
    BARE_OPERATIONS,
    BARE_SAVE,
    BARE_THREAD,
    DETAIL,
    LIST,
    PORTAL_OPERATIONS,
    SEND,
    THREAD,
    LoginRun,
    Sample,
    ServerSample,
    percentile,
)

BIG = "20,000 referrals"
SMALL = "200 referrals"

# The targets, as ratios of p95 in the same run.
BARE_RATIO_LIMIT = 1.5
SAVE_RATIO_LIMIT = 2.0
SCALE_RATIO_LIMIT = 1.3
BARE_PAIRS = ((LIST, BARE_LIST), (DETAIL, BARE_DETAIL), (THREAD, BARE_THREAD))


# Why a target against a baseline is missed, shown next to it in BENCHMARKS.md: what the
# endpoint does that its baseline does not. The measured medians are appended to each.
REASONS: dict[str, str] = {
    LIST: (
        "Authorisation and per-row rules the bare list skips: the MFA check with the membership "
        "snapshot (one query, once per request), and each row's allowed actions and "
        "service-level state computed in Python. The page query is the same index range as the "
        "bare one (cursor pagination, no COUNT)."
    ),
    DETAIL: (
        "The PHI read: an audit event written and committed before any data leaves, the "
        "referral's 10 and the patient's 6 encrypted fields and each prior trial's drug "
        "decrypted (every value's own data key unwrapped first), the MFA check with the "
        "membership snapshot, the prior trials, the duplicate-patient look-up (practice users) "
        "and the thread id, each a query of its own, and DRF's generic serializer over about 60 "
        "nested fields. The bare detail is two `.values()` queries: no model objects, no "
        "serializer."
    ),
    THREAD: (
        "The MFA check with the membership snapshot, the thread looked up scoped to the user "
        "(joined to its referral for the clinic's visibility rule), the page as model objects "
        "with their authors' names, 50 bodies decrypted (a data key unwrapped per body) and the "
        "PHI-read audit event. The bare page is one `.values()` query returned as stored "
        "tokens: no scoping, model objects, decryption or audit."
    ),
    SEND: (
        "The bare save is one sequence update and one insert. A send also checks the MFA "
        "enrolment with the membership snapshot, looks the thread up scoped to the user and "
        "locks it, encrypts the body, moves the author's read position, writes the audit "
        "event and publishes one task after the commit (the participants' notifications are "
        "the worker's, see Setup)."
    ),
}
# A ratio this close to its limit is within what separate runs of the same code differ by.
BORDERLINE = 1.1


@dataclass(frozen=True)
class Stats:
    count: int
    errors: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass
class PhaseLoad:
    """A measured phase: its samples and how busy the machine was meanwhile."""

    dataset: str
    seconds: float
    samples: list[Sample]
    server_samples: list[ServerSample]  # the workers' own view (bench.wsgi's request log)
    machine_busy: float  # share of all CPUs, 0-1
    portal_cpu: float  # share of all CPUs used by this run's gunicorn and its database backends
    portal_cpu_seconds: float  # the same, in CPU seconds
    load_average: float


def stats_by_operation(
    phases: Iterable[PhaseLoad], dataset: str, *, server: bool = False
) -> dict[str, Stats]:
    """Per operation over every phase of ``dataset``: the client's latencies, or with
    ``server`` the workers' own times. Percentiles are of the successful requests."""
    chosen = [phase for phase in phases if phase.dataset == dataset]
    seconds = sum(phase.seconds for phase in chosen)
    grouped: dict[str, list[Sample | ServerSample]] = {}
    for phase in chosen:
        samples: Sequence[Sample | ServerSample] = phase.server_samples if server else phase.samples
        for sample in samples:
            grouped.setdefault(sample.operation, []).append(sample)
    result: dict[str, Stats] = {}
    for operation, samples in grouped.items():
        good = [sample.seconds for sample in samples if sample.ok]
        result[operation] = Stats(
            count=len(samples),
            errors=sum(1 for sample in samples if not sample.ok),
            rps=len(samples) / seconds if seconds else math.nan,
            p50=percentile(good, 0.50),
            p95=percentile(good, 0.95),
            p99=percentile(good, 0.99),
        )
    return result


@dataclass(frozen=True)
class Figures:
    """Client latencies and worker times for both datasets."""

    big: dict[str, Stats]
    small: dict[str, Stats]
    big_server: dict[str, Stats]
    small_server: dict[str, Stats]

    @classmethod
    def of(cls, phases: Sequence[PhaseLoad]) -> Figures:
        return cls(
            big=stats_by_operation(phases, BIG),
            small=stats_by_operation(phases, SMALL),
            big_server=stats_by_operation(phases, BIG, server=True),
            small_server=stats_by_operation(phases, SMALL, server=True),
        )


@dataclass(frozen=True)
class Target:
    """A ratio target, judged on the client's p95 (the issue's measure) and on the workers'
    p95 (which leaves out queueing for a worker): met only when both are within the limit."""

    name: str
    operation: str
    scale: bool
    client: float
    server: float
    limit: float
    detail: str

    @property
    def met(self) -> bool:
        return all(not math.isnan(value) and value <= self.limit for value in self.ratios)

    @property
    def ratios(self) -> tuple[float, float]:
        return (self.client, self.server)


def _ratio(numerator: Stats | None, denominator: Stats | None) -> float:
    if numerator is None or denominator is None or not denominator.p95:
        return math.nan
    return numerator.p95 / denominator.p95


def targets(figures: Figures) -> list[Target]:
    big, small = figures.big, figures.small
    big_server, small_server = figures.big_server, figures.small_server
    found: list[Target] = []
    pairs = [(operation, bare, BARE_RATIO_LIMIT) for operation, bare in BARE_PAIRS]
    pairs.append((SEND, BARE_SAVE, SAVE_RATIO_LIMIT))
    for operation, bare, limit in pairs:
        found.append(
            Target(
                name=f"{operation} p95 <= {limit}x {bare}",
                operation=operation,
                scale=False,
                client=_ratio(big.get(operation), big.get(bare)),
                server=_ratio(big_server.get(operation), big_server.get(bare)),
                limit=limit,
                detail=f"{_ms(big, operation)} vs {_ms(big, bare)}; worker "
                f"{_ms(big_server, operation)} vs {_ms(big_server, bare)}",
            )
        )
    for operation in PORTAL_OPERATIONS:
        found.append(
            Target(
                name=f"{operation} p95 at {BIG} <= {SCALE_RATIO_LIMIT}x at {SMALL}",
                operation=operation,
                scale=True,
                client=_ratio(big.get(operation), small.get(operation)),
                server=_ratio(big_server.get(operation), small_server.get(operation)),
                limit=SCALE_RATIO_LIMIT,
                detail=f"{_ms(big, operation)} vs {_ms(small, operation)}; worker "
                f"{_ms(big_server, operation)} vs {_ms(small_server, operation)}",
            )
        )
    return found


def _ms(stats: dict[str, Stats], operation: str) -> str:
    found = stats.get(operation)
    return "-" if found is None else f"{found.p95 * 1000:,.0f} ms"


def _cell_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:,.0f}"


@dataclass
class Report:
    """Everything BENCHMARKS.md and the console show."""

    date: str
    machine: dict[str, str]
    software: dict[str, str]
    setup: list[str]
    volumes: dict[str, dict[str, int]]
    steps: list[tuple[str, float]]
    phases: list[PhaseLoad]
    login: LoginRun | None
    login_cpu_seconds: float
    login_concurrency: int
    micro: str
    micro_status: str
    reasons: dict[str, str] = field(default_factory=lambda: dict(REASONS))
    notes: list[str] = field(default_factory=list)

    def endpoint_table(self) -> list[list[str]]:
        figures = Figures.of(self.phases)
        rows = [
            [
                "endpoint",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "worker p50 ms",
                "worker p95 ms",
                "errors",
                f"p95 ms at {SMALL}",
                f"worker p95 ms at {SMALL}",
            ]
        ]
        for operation in (*PORTAL_OPERATIONS, *BARE_OPERATIONS):
            stats = figures.big.get(operation)
            if stats is None:
                continue
            server = figures.big_server.get(operation)
            small = figures.small.get(operation)
            small_server = figures.small_server.get(operation)
            rows.append(
                [
                    operation,
                    f"{stats.count:,}",
                    f"{stats.rps:.2f}",
                    _cell_ms(stats.p50),
                    _cell_ms(stats.p95),
                    _cell_ms(stats.p99),
                    _cell_ms(server.p50) if server is not None else "-",
                    _cell_ms(server.p95) if server is not None else "-",
                    f"{stats.errors}",
                    _cell_ms(small.p95) if small is not None else "-",
                    _cell_ms(small_server.p95) if small_server is not None else "-",
                ]
            )
        total = sum(stats.count for stats in figures.big.values())
        seconds = sum(phase.seconds for phase in self.phases if phase.dataset == BIG)
        rows.append(["all (mixed)", f"{total:,}", f"{total / seconds:.2f}", *[""] * 8])
        return rows

    def cost_table(self) -> list[list[str]]:
        """Medians of what each request cost inside the worker, which waiting does not inflate."""
        rows = [
            [
                "endpoint",
                "SQL queries",
                "worker CPU ms",
                "SQL time ms",
                "worker wall ms",
                f"at {SMALL}: SQL queries",
                "worker CPU ms",
                "SQL time ms",
            ]
        ]
        big = _server_groups(self.phases, BIG)
        small = _server_groups(self.phases, SMALL)
        for operation in (*PORTAL_OPERATIONS, *BARE_OPERATIONS):
            samples = big.get(operation)
            if not samples:
                continue
            others = small.get(operation, [])
            rows.append(
                [
                    operation,
                    f"{_median([sample.queries for sample in samples]):.0f}",
                    _cell_ms(_median([sample.cpu_seconds for sample in samples])),
                    _cell_ms(_median([sample.query_seconds for sample in samples])),
                    _cell_ms(_median([sample.seconds for sample in samples])),
                    f"{_median([sample.queries for sample in others]):.0f}" if others else "-",
                    _cell_ms(_median([sample.cpu_seconds for sample in others])),
                    _cell_ms(_median([sample.query_seconds for sample in others])),
                ]
            )
        return rows

    def target_table(self) -> list[list[str]]:
        rows = [["target", "p95 (client; worker)", "ratio", "worker ratio", "met", "reason"]]
        for target in targets(Figures.of(self.phases)):
            client, server = (
                "-" if math.isnan(value) else f"{value:.2f}x" for value in target.ratios
            )
            verdict = "yes" if target.met else "**no**"
            reason = ""
            if not target.met and target.scale:
                reason = self.scale_reason(target.operation)
            elif not target.met:
                reason = self.bare_reason(target)
            rows.append([target.name, target.detail, client, server, verdict, reason])
        return rows

    def bare_reason(self, target: Target) -> str:
        """The endpoint's extra work (REASONS) and what the workers measured for both."""
        bare = dict(BARE_PAIRS).get(target.operation, BARE_SAVE)
        big = _server_groups(self.phases, BIG)
        mine, theirs = big.get(target.operation, []), big.get(bare, [])
        reason = self.reasons.get(target.operation, "")
        if mine and theirs:
            reason += (
                " Medians here: "
                f"{_median([x.queries for x in mine]):.0f} vs "
                f"{_median([x.queries for x in theirs]):.0f} SQL statements, "
                f"{_median([x.cpu_seconds for x in mine]) * 1000:.0f} vs "
                f"{_median([x.cpu_seconds for x in theirs]) * 1000:.0f} ms of worker CPU, "
                f"{_median([x.query_seconds for x in mine]) * 1000:.0f} vs "
                f"{_median([x.query_seconds for x in theirs]) * 1000:.0f} ms in SQL."
            )
        if max(target.ratios) <= BORDERLINE * target.limit:
            reason = (
                f"Borderline: within {BORDERLINE - 1:.0%} of the limit, less than separate runs "
                f"differ by. {reason}"
            )
        return reason

    def scale_reason(self, operation: str) -> str:
        """Why a p95 differs between the two sizes, from what the workers measured: the same
        statements taking the same time point at the machine, more time at the data."""
        big = _server_groups(self.phases, BIG).get(operation, [])
        small = _server_groups(self.phases, SMALL).get(operation, [])
        if len(big) < 5 or len(small) < 5:
            return f"Too few {operation} requests to compare ({len(big)} and {len(small)})."
        queries = (_median([x.queries for x in big]), _median([x.queries for x in small]))
        sql = (_median([x.query_seconds for x in big]), _median([x.query_seconds for x in small]))
        cpu = (_median([x.cpu_seconds for x in big]), _median([x.cpu_seconds for x in small]))
        compared = (
            f"{queries[0]:.0f} vs {queries[1]:.0f} SQL statements, median SQL time "
            f"{sql[0] * 1000:.0f} vs {sql[1] * 1000:.0f} ms, worker CPU {cpu[0] * 1000:.0f} vs "
            f"{cpu[1] * 1000:.0f} ms"
        )
        sizes = (self._median_size(BIG, operation), self._median_size(SMALL, operation))
        # Two milliseconds of slack: a ratio of sub-millisecond medians says nothing.
        if queries[0] > queries[1] or sql[0] > SCALE_RATIO_LIMIT * sql[1] + 0.002:
            return f"Grows with the data: {compared}."
        if sizes[1] and sizes[0] > SCALE_RATIO_LIMIT * sizes[1]:
            return (
                f"Not the table size: {compared}. The answer is larger at {BIG} (median "
                f"{sizes[0] / 1024:.1f} vs {sizes[1] / 1024:.1f} KB): with {SMALL} over 50 "
                "practices a practice's page holds a few rows instead of 25, and the per-row "
                "work (serialisation, allowed actions) grows with the rows on the page."
            )
        return (
            f"Not the data size: {compared} at the two sizes. Each p95 is set by the slowest "
            f"twentieth of {len(big)} and {len(small)} requests, which the machine's other work "
            "decides, and that changed between phases (see the phase table)."
        )

    def _median_size(self, dataset: str, operation: str) -> float:
        sizes = [
            float(sample.size)
            for phase in self.phases
            if phase.dataset == dataset
            for sample in phase.samples
            if sample.operation == operation and sample.ok
        ]
        return _median(sizes) if sizes else 0.0

    def login_rows(self) -> list[list[str]]:
        login = self.login
        if login is None or not login.count:
            return []
        return [
            [
                "logins",
                "failed",
                "logins/s",
                "p50 ms",
                "p95 ms",
                "password step p50 ms",
                "server CPU ms per login",
            ],
            [
                f"{login.count}",
                f"{login.failures}",
                f"{login.count / login.seconds:.2f}",
                _cell_ms(percentile(login.latencies, 0.5)),
                _cell_ms(percentile(login.latencies, 0.95)),
                _cell_ms(percentile(login.password_latencies, 0.5)),
                f"{self.login_cpu_seconds / login.count * 1000:,.0f}",
            ],
        ]

    def console(self) -> str:
        parts = [
            f"Load benchmark at {BIG} (p95 at {SMALL} in the last column):",
            _plain(self.endpoint_table()),
            "",
            "Cost per request (medians inside the workers):",
            _plain(self.cost_table()),
            "",
            "Targets:",
            _plain([row[:5] for row in self.target_table()]),
        ]
        if self.login_rows():
            parts += ["", "Login (password with Argon2, then TOTP):", _plain(self.login_rows())]
        return "\n".join(parts)

    def markdown(self) -> str:
        lines = [
            "# Benchmarks",
            "",
            "Written by `make bench` (bench/make_bench.py); rerun it to refresh every figure",
            "below. It seeds PostgreSQL, starts the portal under gunicorn with production",
            "settings, drives a mixed load over HTTP from another process, and measures the bare",
            "baselines in the same run. The in-process micro-benchmarks of bench/run.py follow",
            "at the end.",
            "",
            f"**Date:** {self.date}",
            "",
            "## Machine and software",
            "",
            _markdown([["", ""], *[[key, value] for key, value in self.machine.items()]]),
            "",
            _markdown([["", ""], *[[key, value] for key, value in self.software.items()]]),
            "",
            "## Setup",
            "",
            *[f"- {line}" for line in self.setup],
            "",
            "## Data",
            "",
            _markdown(_volume_rows(self.volumes)),
            "",
            "## Results",
            "",
            f"Per endpoint at {BIG}, all phases of that dataset together. Latency is the",
            "client's (connect to last byte), so it includes waiting for a free gunicorn worker;",
            "*worker* is the worker's own time for the request (bench/wsgi.py's request log),",
            "which leaves that wait out. Errors are answers other than the expected 200/201.",
            "",
            _markdown(self.endpoint_table()),
            "",
            "### Cost per request",
            "",
            "Medians over the successful requests, measured inside the gunicorn workers by",
            "bench/wsgi.py: SQL statements, the worker's CPU time (Python, decryption and",
            "serialisation; the database's own CPU is not in it), the wall time spent in SQL",
            "calls, and the worker's wall time. None of these include queueing for a worker.",
            "",
            _markdown(self.cost_table()),
            "",
            "### Targets",
            "",
            "Each ratio is of p95s in the same run. A target counts as met only when both the",
            "client's ratio (the issue's measure) and the workers' ratio are within it: when the",
            "machine is saturated, queueing for a worker inflates every client latency alike and",
            "would hide a slow endpoint behind its baseline.",
            "",
            _markdown(self.target_table()),
            "",
        ]
        if self.login_rows():
            lines += [
                "### Login throughput",
                "",
                "allauth's app API: the password (Argon2id with Django's parameters: time cost 2,",
                "memory 100 MiB, parallelism 8), then a TOTP code; the virtual users sign in, each",
                f"once, {self.login_concurrency} at a time against the {BIG} server, before the",
                "load phases. Latency is the two requests' time (with more logins in flight than",
                "workers, it includes waiting for one); server CPU counts the gunicorn workers and",
                "their database backends, and bounds the throughput of an otherwise idle machine.",
                "",
                _markdown(self.login_rows()),
                "",
            ]
        lines += [
            "### The machine during the measured phases",
            "",
            _markdown(_phase_rows(self.phases)),
            "",
        ]
        if self.notes:
            lines += ["### Notes", "", *[f"- {note}" for note in self.notes], ""]
        lines += [
            "## Time taken by `make bench`",
            "",
            _markdown([["step", "seconds"], *[[name, f"{sec:.0f}"] for name, sec in self.steps]]),
            "",
            "## In-process micro-benchmarks (bench/run.py)",
            "",
            self.micro_status,
            "",
            "```",
            self.micro.rstrip() or "(not run)",
            "```",
            "",
        ]
        return "\n".join(lines)


def _server_groups(phases: Sequence[PhaseLoad], dataset: str) -> dict[str, list[ServerSample]]:
    grouped: dict[str, list[ServerSample]] = {}
    for phase in phases:
        if phase.dataset == dataset:
            for sample in phase.server_samples:
                if sample.ok:
                    grouped.setdefault(sample.operation, []).append(sample)
    return grouped


def _median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


VOLUME_LABELS = {
    "practices": "practices (and one clinic)",
    "users": "users (each with a membership and TOTP)",
    "referrals": "referrals (each with its patient)",
    "prior_trials": "prior treatment trials",
    "events": "timeline events",
    "threads": "message threads",
    "messages": "messages",
    "reports": "progress reports",
    "reports_with_pdf": "of which ready, with stored PDFs",
}


def _volume_rows(volumes: dict[str, dict[str, int]]) -> list[list[str]]:
    datasets = list(volumes)
    rows = [["rows", *datasets]]
    names = [name for name in VOLUME_LABELS if any(name in counts for counts in volumes.values())]
    for name in names:
        label = VOLUME_LABELS[name]
        rows.append([label, *[f"{volumes[dataset].get(name, 0):,}" for dataset in datasets]])
    return rows


def _phase_rows(phases: Sequence[PhaseLoad]) -> list[list[str]]:
    rows = [
        [
            "phase",
            "seconds",
            "requests",
            "machine CPU busy",
            "of it this run",
            "server CPU ms per request",
            "load avg",
        ]
    ]
    for number, phase in enumerate(phases, start=1):
        per_request = phase.portal_cpu_seconds / max(len(phase.samples), 1) * 1000
        rows.append(
            [
                f"{number}: {phase.dataset}",
                f"{phase.seconds:.0f}",
                f"{len(phase.samples):,}",
                f"{phase.machine_busy:.0%}",
                f"{phase.portal_cpu:.0%}",
                f"{per_request:.0f}",
                f"{phase.load_average:.1f}",
            ]
        )
    return rows


def _markdown(rows: list[list[str]]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _plain(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)
