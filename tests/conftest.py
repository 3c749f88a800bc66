"""Shared fixtures: service switches, the live Celery worker, and REQUIRE_SERVICES enforcement.

Tests that need PostgreSQL, Redis or Chromium skip with a reason when those are not configured.
With ``REQUIRE_SERVICES=1`` (as ``.ci/run`` sets) every such skip is turned into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection

from portal.celery import app as celery_app
from tests.personas import Cast, build_cast

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
FAST_TEST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome: Any = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"REQUIRE_SERVICES=1 forbids skipping: {reason}"


@pytest.fixture(autouse=True)
def eager_celery(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run tasks in-process unless a test asks for the live worker."""
    if request.node.get_closest_marker("live_worker"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@dataclass
class LiveWorker:
    process: subprocess.Popen[bytes]
    queue: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 30.0, interval: float = 0.2
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _test_database_url() -> str:
    """DATABASE_URL pointing at the test database pytest-django created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + str(connection.settings_dict["NAME"])))


StartLiveWorker = Callable[..., LiveWorker]


@pytest.fixture
def start_live_worker(
    transactional_db: None, tmp_path: Path
) -> Generator[StartLiveWorker, None, None]:
    """Start real ``celery worker`` processes on the configured broker, reading the test database.

    ``start_live_worker(env={...}, queue=...)`` starts one (extra environment variables for it;
    the queue of an earlier worker to take over its messages) and returns when it is ready. The
    test process sends to the latest worker's queue. Every worker is stopped at the end.
    """
    if not os.environ.get("CELERY_BROKER_URL") or not os.environ.get("DATABASE_URL"):
        pytest.skip("needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")
    started: list[LiveWorker] = []
    previous_queue = celery_app.conf.task_default_queue

    def start(env: dict[str, str] | None = None, queue: str | None = None) -> LiveWorker:
        queue = queue or f"test-{uuid.uuid4().hex[:12]}"
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        environment = os.environ | {
            "DATABASE_URL": _test_database_url(),
            "CELERY_TASK_ALWAYS_EAGER": "0",
            # Tasks the worker enqueues itself (a re-drive enqueuing sends) come back to it.
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            # The worker writes encrypted files (reports) where this test reads them.
            "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            **(env or {}),
        }
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker",
            "--pool=solo", "--queues", queue, "--hostname", f"{queue}-{len(started)}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
        ]  # fmt: skip
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=BASE_DIR, env=environment, stdout=log_file, stderr=subprocess.STDOUT
            )
        worker = LiveWorker(process=process, queue=queue, log_path=log_path)
        started.append(worker)
        if not wait_for(lambda: "ready." in worker.log() or process.poll() is not None, timeout=60):
            pytest.fail(f"the Celery worker did not start:\n{worker.log()}")
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{worker.log()}")
        return worker

    try:
        yield start
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in started:
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=10)
        celery_app.conf.task_default_queue = previous_queue
        celery_app.conf.task_always_eager = True


@pytest.fixture
def live_worker(start_live_worker: StartLiveWorker) -> LiveWorker:
    """A real ``celery worker`` process on the configured broker, reading the test database."""
    return start_live_worker()


@pytest.fixture(autouse=True)
def fake_malware_scanner(settings: Any) -> None:
    """Every upload in the tests goes through a scanner that flags the EICAR test string."""
    settings.PORTAL_MALWARE_SCANNER = "tests.scanners.eicar_scanner"


@pytest.fixture(autouse=True)
def isolated_media_root(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Encrypted files a test writes go to a fresh directory, never to the developer's var/media."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Argon2id at production cost (about half a second a hash here) would dominate every test
    that builds the persona cast; tests/portal/accounts/test_passwords.py checks the real one."""
    settings.PASSWORD_HASHERS = FAST_TEST_HASHERS


@pytest.fixture(autouse=True)
def clear_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache (Redis in CI); no test inherits another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def cast(db: None) -> Cast:
    """The persona cast (see tests/personas.py), every signed-in persona with TOTP enrolled."""
    return build_cast()
