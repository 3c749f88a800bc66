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
from django.core.cache import cache
from django.db import connection

from portal.celery import app as celery_app
from tests.personas import Cast, build_cast

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
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


@pytest.fixture
def live_worker(transactional_db: None, tmp_path: Path) -> Generator[LiveWorker, None, None]:
    """A real ``celery worker`` process on the configured broker, reading the test database."""
    if not os.environ.get("CELERY_BROKER_URL") or not os.environ.get("DATABASE_URL"):
        pytest.skip("needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")
    queue = f"test-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "worker.log"
    environment = os.environ | {
        "DATABASE_URL": _test_database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "worker",
        "--pool=solo", "--queues", queue, "--hostname", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]  # fmt: skip
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    celery_app.conf.task_always_eager = False
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=environment, stdout=log_file, stderr=subprocess.STDOUT
        )
    worker = LiveWorker(process=process, queue=queue, log_path=log_path)
    try:
        if not wait_for(lambda: "ready." in worker.log() or process.poll() is not None, timeout=60):
            pytest.fail(f"the Celery worker did not start:\n{worker.log()}")
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{worker.log()}")
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        celery_app.conf.task_default_queue = previous_queue
        celery_app.conf.task_always_eager = True


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
