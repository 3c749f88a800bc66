"""``make bench``: seed PostgreSQL, serve the portal under gunicorn, load it, write BENCHMARKS.md.

Steps (each timed; the whole run is meant to stay under 15 minutes on a 2-core machine):

1. Check PostgreSQL (127.0.0.1:5432 as postgres, or BENCH_DATABASE_URL) and Redis (db 11, or
   BENCH_REDIS_URL). Nothing else is started for them: both must be running.
2. Create the databases ``bench`` and ``bench_small`` (dropped first if left over), migrate once
   and clone the migrated database for the second.
3. The in-process micro-benchmarks (bench/run.py) in a scratch clone, as a section of the output.
4. Seed both databases in parallel processes (bench/seed.py): the issue's volume in ``bench``,
   200 referrals in ``bench_small``. The small one is ready first: its gunicorn starts and its
   virtual users sign in while the big one is still being seeded (none of it measured).
5. Start the big database's gunicorn. Both servers run 4 sync workers of ``bench.wsgi``:
   production settings with throw-away secrets, the bare baseline endpoints mounted.
6. Sign the big server's virtual users in (timed: the login throughput), warm both servers up,
   then run the measured phases, alternating the two datasets so that other work on the shared
   machine hits both alike.
7. Stop what it started, drop the databases (unless ``--keep-databases``), empty Redis db 11,
   print the figures and write BENCHMARKS.md.

Only standard library and the project's runtime dependencies are used (psycopg, redis).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import load  # noqa: E402 - the repository root must be importable first
from bench.report import BIG, SMALL, PhaseLoad, Report, stats_by_operation  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
GUNICORN_WORKERS = 4
HEALTH_TIMEOUT_SECONDS = 120


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make bench", description="Load benchmark of the portal on PostgreSQL and Redis."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL URL whose database name is used for the big dataset "
        "(<name>_small for the small one). Default: BENCH_DATABASE_URL or %(default)s.",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the cache and the broker; its database is emptied before and after.",
    )
    parser.add_argument("--users", type=int, default=50, help="Concurrent virtual users.")
    parser.add_argument("--phase-seconds", type=float, default=30.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Measured phases per dataset (alternating)."
    )
    parser.add_argument("--warmup-seconds", type=float, default=8.0)
    parser.add_argument("--think-min", type=float, default=2.0, help="Seconds between requests.")
    parser.add_argument("--think-max", type=float, default=8.0)
    parser.add_argument("--referrals", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--reports", type=int, default=5_000)
    parser.add_argument("--pdf-reports", type=int, default=200)
    parser.add_argument("--small-referrals", type=int, default=200)
    parser.add_argument(
        "--login-users", type=int, default=0, help="Users who only log in (besides --users)."
    )
    parser.add_argument("--login-concurrency", type=int, default=8)
    parser.add_argument("--skip-micro", action="store_true", help="Leave out bench/run.py.")
    parser.add_argument(
        "--keep-databases",
        action="store_true",
        help="Leave bench and bench_small (their PHI stays unreadable: the keys were throw-away).",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="Keep the gunicorn and seeding logs."
    )
    parser.add_argument("--output", type=Path, default=BASE_DIR / "BENCHMARKS.md")
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="A line for the notes of BENCHMARKS.md (e.g. other work on the machine).",
    )
    return parser


# --- small helpers -----------------------------------------------------------------------------


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def throwaway_secrets() -> dict[str, str]:
    """Fresh for every run: production settings refuse to start without them."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PORTAL_ENCRYPTION_KEYS": f"bench1:{_key()}",
        "PORTAL_ENCRYPTION_ACTIVE_KEY": "bench1",
        "PORTAL_BLIND_INDEX_KEY": _key(),
        "PORTAL_AUDIT_HMAC_KEY": _key(),
    }


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name or not name.isascii() or not name.replace("_", "").isalnum():
        raise SystemExit(f"the database name in {url!r} must be letters, digits and _")
    return name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def machine() -> dict[str, str]:
    model = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "CPU": model,
        "CPUs (nproc)": str(os.cpu_count()),
        "RAM": memory,
        "OS": f"{platform.system()} {platform.release()}",
    }


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    fields = [float(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _process_cpu(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds used so far by each of ``pids`` (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (float(fields[11]) + float(fields[12])) / ticks
    return used


class CpuMeter:
    """CPU seconds used by one server's gunicorn processes and its database backends between
    ``start`` and ``stop`` (backends that connect meanwhile count from their start)."""

    def __init__(self, server: Server, postgres: Postgres) -> None:
        self.server = server
        self.postgres = postgres
        self.before: dict[int, float] = {}

    def _pids(self) -> list[int]:
        return self.server.pids() + self.postgres.backend_pids(self.server.database)

    def start(self) -> None:
        self.before = _process_cpu(self._pids())

    def stop(self) -> float:
        after = _process_cpu(list(set(self._pids()) | set(self.before)))
        return sum(max(used - self.before.get(pid, 0.0), 0.0) for pid, used in after.items())


def _children(pid: int) -> list[int]:
    with suppress(OSError):
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    return []


# --- PostgreSQL and Redis ------------------------------------------------------------------------


class Postgres:
    """Administration through the maintenance database (psycopg, a runtime dependency)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin_url = with_database(url, "postgres")

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as connection:
            # Database names come from database_name(), which allows letters, digits and _.
            connection.execute(statement)

    def value(self, query: str, database: str = "postgres") -> Any:
        url = with_database(self.url, database)
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
            row = connection.execute(query).fetchone()
        return None if row is None else row[0]

    def backend_pids(self, database: str) -> list[int]:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]
            ).fetchall()
        return [int(row[0]) for row in rows]

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self, name: str, template: str | None = None) -> None:
        self.drop(name)
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{suffix}')


def redis_client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_connect_timeout=5)


# --- processes -----------------------------------------------------------------------------------


def python() -> str:
    return sys.executable


def run_step(command: Sequence[str], env: dict[str, str]) -> None:
    """Run a child to completion; its output is shown if it fails."""
    output = subprocess.run(  # noqa: S603 - our own interpreter and scripts
        list(command), cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        text = output.stdout + output.stderr
        raise SystemExit(f"{' '.join(command[:3])} failed ({output.returncode}):\n{text[-4000:]}")


@dataclass
class Server:
    dataset: str
    database: str
    port: int
    process: subprocess.Popen[bytes]
    request_logs: Path  # bench.wsgi's per-worker request logs

    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]


def start_server(dataset: str, database: str, env: dict[str, str], logs: Path) -> Server:
    port = free_port()
    slug = "big" if dataset == BIG else "small"
    command = [
        str(Path(python()).parent / "gunicorn"),
        "bench.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(GUNICORN_WORKERS),
        "--worker-class",
        "sync",
        "--timeout",
        "120",
        "--backlog",
        "2048",
        "--access-logfile",
        str(logs / f"access-{slug}.log"),
        "--no-control-socket",
        "--error-logfile",
        str(logs / f"gunicorn-{slug}.log"),
    ]
    requests = logs / f"requests-{slug}"
    requests.mkdir(exist_ok=True)
    # The portal logs to stderr (warnings such as refused logins); keep it out of the output.
    with (logs / f"portal-{slug}.log").open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - gunicorn from this virtualenv
            command,
            cwd=BASE_DIR,
            env={**env, "BENCH_REQUEST_LOG_DIR": str(requests)},
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Server(dataset, database, port, process, requests)


def wait_healthy(server: Server, logs: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if load.request(server.port, "GET", "/healthz").status == 200:
            return
        time.sleep(0.5)
    slug = "big" if server.dataset == BIG else "small"
    log = "".join(
        (logs / name).read_text()[-3000:]
        for name in (f"gunicorn-{slug}.log", f"portal-{slug}.log")
        if (logs / name).exists()
    )
    raise SystemExit(f"gunicorn for {server.dataset} did not become healthy:\n{log}")


def stop_server(server: Server) -> None:
    """SIGTERM to our gunicorn master (it stops its workers), SIGKILL to its group if it hangs."""
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


# --- the run -------------------------------------------------------------------------------------


class Steps:
    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []
        self.started = time.perf_counter()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.done.append((name, elapsed))
        print(f"   ({elapsed:.0f} s)", flush=True)

    def total(self) -> float:
        return time.perf_counter() - self.started


def virtual_users(plan: dict[str, Any], count: int, network: int) -> list[load.VirtualUser]:
    specs = plan["virtual_users"]
    if count > len(specs):
        raise SystemExit(f"the plan has {len(specs)} virtual users, fewer than --users {count}")
    return [
        load.VirtualUser(
            spec=spec,
            client_ip=f"10.{network}.{index // 250}.{index % 250 + 1}",
            seed=network * 1000 + index,
        )
        for index, spec in enumerate(specs[:count])
    ]


def sign_in(
    server: Server,
    users: Sequence[load.VirtualUser],
    extra: Sequence[dict[str, str]],
    password: str,
    concurrency: int,
    network: int,
) -> load.LoginRun:
    by_email = {user.email: user for user in users}

    def keep(email: str, token: str) -> None:
        if email in by_email:
            by_email[email].token = token

    people = [(user.email, user.spec["totp_secret"], user.client_ip) for user in users]
    people += [
        (person["email"], person["totp_secret"], f"10.{network}.200.{index % 250 + 1}")
        for index, person in enumerate(extra)
    ]
    run = load.login_all(server.port, people, password, concurrency=concurrency, on_token=keep)
    missing = [user.email for user in users if not user.token]
    if missing:
        raise SystemExit(f"{len(missing)} virtual users could not sign in (see above)")
    return run


def measured_phase(
    server: Server,
    users: Sequence[load.VirtualUser],
    postgres: Postgres,
    arguments: argparse.Namespace,
    seconds: float,
) -> PhaseLoad:
    meter = CpuMeter(server, postgres)
    meter.start()
    busy_before, total_before = _cpu_times()
    since = time.time()
    phase = load.run_phase(
        server.port,
        users,
        seconds=seconds,
        think=(arguments.think_min, arguments.think_max),
        label=server.dataset,
    )
    busy_after, total_after = _cpu_times()
    ours_used = meter.stop()
    until = time.time() + 1.0
    time.sleep(0.5)  # a worker writes its line when the response is closed
    lines = [
        line
        for path in sorted(server.request_logs.glob("requests-*.log"))
        for line in path.read_text().splitlines()
    ]
    cpus = os.cpu_count() or 1
    errors = sum(1 for sample in phase.samples if not sample.ok)
    print(
        f"   {server.dataset}: {len(phase.samples):,} requests in {phase.seconds:.0f} s, "
        f"{errors} errors",
        flush=True,
    )
    return PhaseLoad(
        dataset=server.dataset,
        seconds=phase.seconds,
        samples=phase.samples,
        server_samples=load.server_samples(lines, since, until),
        machine_busy=(busy_after - busy_before) / max(total_after - total_before, 1.0),
        portal_cpu=ours_used / (phase.seconds * cpus),
        portal_cpu_seconds=ours_used,
        load_average=os.getloadavg()[0],
    )


def seed_command(plan: Path, values: dict[str, int]) -> list[str]:
    command = [python(), "-m", "bench.seed", "--plan", str(plan)]
    for name, value in values.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def _read_plan(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def run_micro(base_env: dict[str, str], url: str, scratch: str, workdir: Path) -> tuple[str, str]:
    """bench/run.py in the scratch database (development settings, in-process, as written)."""
    result = subprocess.run(  # noqa: S603 - our own script
        [python(), "bench/run.py"],
        cwd=BASE_DIR,
        env={
            **base_env,
            "DJANGO_ENV": "development",
            "DATABASE_URL": url,
            "MEDIA_ROOT": str(workdir / "media-micro"),
            "BENCH_MICRO_DATABASE": scratch,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout, flush=True)
    if result.returncode == 0:
        status = "Every micro-benchmark with a target met it."
    elif result.returncode == 1 and result.stdout:
        status = "A micro-benchmark missed its target (see the table)."
    else:
        print(result.stderr[-3000:])
        status = f"bench/run.py failed (exit {result.returncode}); its error is in the log above."
    return result.stdout, status


@dataclass
class Settings:
    """Everything a run derives from its arguments."""

    arguments: argparse.Namespace
    workdir: Path
    big: str
    small: str
    base_env: dict[str, str]

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def production_env(self, database: str, media: str) -> dict[str, str]:
        url = self.arguments.database_url
        return {
            **self.base_env,
            "DJANGO_ENV": "production",
            "DATABASE_URL": with_database(url, database),
            "REDIS_URL": self.arguments.redis_url,
            "CELERY_BROKER_URL": self.arguments.redis_url,
            "MEDIA_ROOT": str(self.workdir / media),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            # As behind the TLS proxy: X-Forwarded-For names the client (see bench/load.py).
            "TRUSTED_PROXY_COUNT": "1",
            "BENCH_BASELINE_URLS": "1",
        }


def seed(
    settings: Settings,
    big_env: dict[str, str],
    small_env: dict[str, str],
    when_small_is_ready: Callable[[], None],
) -> None:
    """Both datasets at once (separate processes; the big one in two worker processes). The
    small one is ready long before: ``when_small_is_ready`` runs while the big one is seeded."""
    arguments = settings.arguments
    ratio = arguments.small_referrals / arguments.referrals
    small_log = (settings.logs / "seed-small.log").open("w")
    small = subprocess.Popen(  # noqa: S603 - our own script
        seed_command(
            settings.workdir / "plan-small.json",
            {
                "referrals": arguments.small_referrals,
                "messages": max(int(arguments.messages * ratio), 1),
                "reports": max(int(arguments.reports * ratio), 50),
                "pdf_reports": 40,
                "drafts_per_vu": 2,
                "reviews_per_vu": 3,
                "login_users": 0,
                "id_offset": 1_000_000,  # other user ids: the TOTP "used code" cache is shared
                "jobs": 1,
            },
        ),
        cwd=BASE_DIR,
        env=small_env,
        stdout=small_log,
        stderr=subprocess.STDOUT,
    )
    big = subprocess.Popen(  # noqa: S603 - our own script
        seed_command(
            settings.workdir / "plan-big.json",
            {
                "referrals": arguments.referrals,
                "messages": arguments.messages,
                "reports": arguments.reports,
                "pdf_reports": arguments.pdf_reports,
                "login_users": arguments.login_users,
            },
        ),
        cwd=BASE_DIR,
        env=big_env,
    )
    try:
        small.wait()
        small_log.close()
        if small.returncode != 0:
            log = (settings.logs / "seed-small.log").read_text()[-4000:]
            raise SystemExit(f"seeding the small database failed:\n{log}")
        when_small_is_ready()
        if big.wait() != 0:
            raise SystemExit("seeding the big database failed (see above)")
    finally:
        for process in (small, big):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def load_phases(
    settings: Settings,
    servers: dict[str, Server],
    users: dict[str, list[load.VirtualUser]],
    postgres: Postgres,
) -> list[PhaseLoad]:
    arguments = settings.arguments
    think = (arguments.think_min, arguments.think_max)
    for dataset in (BIG, SMALL):
        load.run_phase(
            servers[dataset].port,
            users[dataset],
            seconds=arguments.warmup_seconds,
            think=think,
            label=dataset,
        )
    phases: list[PhaseLoad] = []
    for _ in range(arguments.rounds):
        for dataset in (BIG, SMALL):
            phases.append(
                measured_phase(
                    servers[dataset], users[dataset], postgres, arguments, arguments.phase_seconds
                )
            )
    return phases


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    steps = Steps()
    big_name = database_name(arguments.database_url)
    small_name = f"{big_name}_small"
    postgres = Postgres(arguments.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    (workdir / "logs").mkdir()
    # Production serves static files with WhiteNoise from STATIC_ROOT; the API load needs none.
    (workdir / "static").mkdir()
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PORTAL_", "CELERY_", "DATABASE_", "REDIS_", "BENCH_"))
        and key not in ("SECRET_KEY", "ALLOWED_HOSTS", "MEDIA_ROOT", "STATIC_ROOT")
    }
    password = secrets.token_urlsafe(18)
    base_env.update(throwaway_secrets())
    base_env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        PYTHONPATH=str(BASE_DIR),
        PORTAL_VAR_DIR=str(workdir / "var"),
        STATIC_ROOT=str(workdir / "static"),
        DJANGO_DEBUG="0",
        BENCH_PASSWORD=password,
    )
    settings = Settings(arguments, workdir, big_name, small_name, base_env)
    servers: dict[str, Server] = {}
    created: list[str] = []
    finished = False
    broker: Any = None
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        with steps.step("check PostgreSQL and Redis"):
            try:
                postgres_version = str(postgres.value("SHOW server_version"))
                postgres_version += (
                    " ("
                    + ", ".join(
                        f"{name} {postgres.value(f'SHOW {name}')}"
                        for name in ("shared_buffers", "synchronous_commit", "autovacuum")
                    )
                    + ")"
                )
                broker = redis_client(arguments.redis_url)
                redis_version = str(broker.info("server")["redis_version"])
                broker.flushdb()
            except Exception as error:  # whatever it is, they are not reachable
                raise SystemExit(
                    "make bench needs PostgreSQL (user postgres on 127.0.0.1:5432, or "
                    f"BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL): {error}"
                ) from None
            print(f"   PostgreSQL {postgres_version}, Redis {redis_version}", flush=True)
        big_env = settings.production_env(big_name, "media-big")
        small_env = settings.production_env(small_name, "media-small")

        with steps.step(f"create and migrate {big_name}, clone it as {small_name}"):
            created += [big_name, small_name]
            postgres.create(big_name)
            run_step([python(), "manage.py", "migrate", "--noinput", "-v0"], big_env)
            postgres.create(small_name, template=big_name)

        micro, micro_status = "", "Not run (--skip-micro)."
        if not arguments.skip_micro:
            with steps.step("in-process micro-benchmarks (bench/run.py)"):
                micro, micro_status = run_micro(
                    base_env, with_database(arguments.database_url, small_name), small_name, workdir
                )
                postgres.create(small_name, template=big_name)  # a clean clone again

        users: dict[str, list[load.VirtualUser]] = {}

        def serve_small_and_sign_in() -> None:
            # Unmeasured: the small dataset's server and sessions, while the big one is seeded.
            print(f"   {SMALL} seeded: starting its server and signing its users in", flush=True)
            servers[SMALL] = start_server(SMALL, small_name, small_env, settings.logs)
            wait_healthy(servers[SMALL], settings.logs)
            users[SMALL] = virtual_users(
                _read_plan(workdir / "plan-small.json"), arguments.users, network=2
            )
            sign_in(servers[SMALL], users[SMALL], [], password, arguments.login_concurrency, 2)

        with steps.step("seed both databases (bench/seed.py)"):
            seed(settings, big_env, small_env, serve_small_and_sign_in)
            # Write the seeded pages out now rather than in a checkpoint during the load.
            postgres.execute("CHECKPOINT")
        plans = {
            BIG: _read_plan(workdir / "plan-big.json"),
            SMALL: _read_plan(workdir / "plan-small.json"),
        }

        with steps.step(f"start gunicorn ({GUNICORN_WORKERS} sync workers) on {big_name}"):
            servers[BIG] = start_server(BIG, big_name, big_env, settings.logs)
            wait_healthy(servers[BIG], settings.logs)
        users[BIG] = virtual_users(plans[BIG], arguments.users, network=1)
        with steps.step("sign in (login throughput)"):
            login_meter = CpuMeter(servers[BIG], postgres)
            login_meter.start()
            login_run = sign_in(
                servers[BIG],
                users[BIG],
                plans[BIG]["login_users"],
                password,
                arguments.login_concurrency,
                network=1,
            )
            login_cpu = login_meter.stop()
            print(
                f"   {login_run.count} logins in {login_run.seconds:.1f} s "
                f"({login_run.count / login_run.seconds:.2f}/s)",
                flush=True,
            )

        with steps.step(
            f"load: {arguments.users} users, warm-up, then {arguments.rounds} x "
            f"{arguments.phase_seconds:.0f} s per dataset"
        ):
            phases = load_phases(settings, servers, users, postgres)
        exhausted = sum(user.exhausted for group in users.values() for user in group)
        finished = True
    finally:
        for server in servers.values():
            stop_server(server)
        if not arguments.keep_databases:
            for name in created:
                with suppress(Exception):
                    postgres.drop(name)
        if broker is not None:
            with suppress(Exception):
                broker.flushdb()
        if finished and not arguments.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            # The seeded data is gone with the databases; the logs explain what happened.
            print(f"\nLogs kept in {workdir / 'logs'}", flush=True)

    report = Report(
        date=date,
        machine=machine(),
        software={
            "Python": platform.python_version(),
            "Django": metadata.version("django"),
            "PostgreSQL": postgres_version,
            "Redis": redis_version,
            "gunicorn": f"{metadata.version('gunicorn')}: {GUNICORN_WORKERS} sync workers, "
            "one server per dataset",
        },
        setup=setup_lines(arguments, users[BIG]),
        volumes={BIG: plans[BIG]["counts"], SMALL: plans[SMALL]["counts"]},
        steps=[*steps.done, ("total", steps.total())],
        phases=phases,
        login=login_run,
        login_cpu_seconds=login_cpu,
        login_concurrency=arguments.login_concurrency,
        micro=micro,
        micro_status=micro_status,
        notes=notes(arguments, phases, exhausted, plans),
    )
    print()
    print(report.console())
    arguments.output.write_text(report.markdown())
    print(f"\nWrote {arguments.output} ({steps.total():.0f} s in all).")
    return 0


def setup_lines(arguments: argparse.Namespace, users: Sequence[load.VirtualUser]) -> list[str]:
    roles: dict[str, int] = {}
    for user in users:
        roles[user.spec["role"]] = roles.get(user.spec["role"], 0) + 1
    mix = ", ".join(f"{name} {weight}" for name, weight in load.WEIGHTS.items())
    return [
        "The portal: `DJANGO_ENV=production` (throw-away secrets generated for the run), "
        "`SECURE_SSL_REDIRECT=0` for plain HTTP on 127.0.0.1, `TRUSTED_PROXY_COUNT=1` (each "
        "virtual user sends its own `X-Forwarded-For`, as a TLS proxy would), Redis as cache and "
        "Celery broker; no Celery worker runs, so tasks wait in Redis: publishing them is part "
        "of each request, running them is not. A message send publishes one task, and the "
        "worker records the participants' in-app notifications and outbox rows and sends the "
        "e-mails (messaging.services.message_participants_notify), so that work, which the "
        "request did itself before, is not in the send's figures.",
        f"gunicorn `bench.wsgi` with {GUNICORN_WORKERS} sync workers per dataset; `bench.wsgi` "
        "is `portal.wsgi` plus the bare baseline endpoints of bench/baseline.py (same "
        "middleware and session-token authentication; no MFA or scoping query, no audit, no "
        "decryption) and a per-request log of CPU time and SQL statements.",
        f"{len(users)} concurrent virtual users ("
        + ", ".join(f"{count} {role.replace('_', ' ')}s" for role, count in roles.items())
        + f"), each a thread of bench/load.py waiting {arguments.think_min:g}-"
        f"{arguments.think_max:g} s between requests; each signs in through allauth's app API "
        "(password, then TOTP) and sends `X-Session-Token` on every request.",
        f"The mix (relative weights; submit for providers, accept for coordinators): {mix}.",
        "Both databases are seeded with `COPY` (bench/seed.py: every index, constraint and "
        "trigger in place, PHI encrypted by the models' own field code), then `VACUUM (ANALYZE)` "
        "and a `CHECKPOINT` before any request.",
        f"Measured: {arguments.rounds} phases of {arguments.phase_seconds:.0f} s per dataset, "
        "alternating the two datasets so that load from other work hits both, after an "
        f"unrecorded warm-up of {arguments.warmup_seconds:.0f} s on each.",
        "Thread page = `GET /api/v1/threads/{id}/messages/` (the first 50 messages, decrypted, "
        "audited); referral list = `GET /api/v1/referrals/` (a cursor page of 25); report PDF = "
        "`GET /api/v1/reports/{id}/pdf/` (decrypted and hash-checked, streamed).",
    ]


def notes(
    arguments: argparse.Namespace,
    phases: Sequence[PhaseLoad],
    exhausted: int,
    plans: dict[str, dict[str, Any]],
) -> list[str]:
    found = list(arguments.note)
    busy = max((phase.machine_busy for phase in phases), default=0.0)
    ours = min((phase.portal_cpu for phase in phases), default=0.0)
    if busy - ours > 0.15:
        found.append(
            "Other work shared the machine during the measured phases (the CPU column: the "
            "machine's busy share against this run's gunicorn and database backends)."
        )
    if exhausted:
        found.append(
            f"Submit/accept found no seeded referral left {exhausted} time(s) and read a "
            "referral detail instead."
        )
    bare = stats_by_operation(phases, BIG).get(load.BARE_LIST)
    if bare is not None:
        found.append(
            f"For scale: the issue measured a bare DRF page of 25 rows on this machine at about "
            f"70 ms p95 (50 users, 4 sync workers, no COUNT); the bare list here: "
            f"{bare.p95 * 1000:.0f} ms p95 ({bare.p50 * 1000:.0f} ms p50)."
        )
    seconds = plans[BIG].get("seconds", {})
    if seconds:
        parts = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
        found.append(f"Seeding the big dataset took {parts}.")
    return found


if __name__ == "__main__":
    sys.exit(main())
