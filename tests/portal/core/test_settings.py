"""Production start-up fails closed; a correctly configured production passes check --deploy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[3]

PRODUCTION_ENVIRONMENT = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k7Qp-Zr8vW2xN4mB6tY1uI9oP3aS5dF0gH7jK2lZ8xC4vB1nM6qW9eR3tY5uI0oP",
    "PORTAL_ENCRYPTION_KEYS": "prod1:" + "A" * 43 + "=",
    "PORTAL_ENCRYPTION_ACTIVE_KEY": "prod1",
    "PORTAL_BLIND_INDEX_KEY": "B" * 43 + "=",
    "PORTAL_AUDIT_HMAC_KEY": "C" * 43 + "=",
    "ALLOWED_HOSTS": "portal.example.org",
}


def run_manage(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PORTAL_", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=base | environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "PORTAL_ENCRYPTION_KEYS",
        "PORTAL_ENCRYPTION_ACTIVE_KEY",
        "PORTAL_BLIND_INDEX_KEY",
        "PORTAL_AUDIT_HMAC_KEY",
    ],
)
def test_production_without_a_secret_stops_naming_the_variable(missing: str) -> None:
    environment = {key: value for key, value in PRODUCTION_ENVIRONMENT.items() if key != missing}

    result = run_manage("check", environment=environment)

    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    # The message names the variable but never prints a secret value.
    for value in PRODUCTION_ENVIRONMENT.values():
        if len(value) > 20:
            assert value not in result.stderr


def test_production_with_every_variable_passes_check_deploy() -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", environment=PRODUCTION_ENVIRONMENT
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_debug() -> None:
    result = run_manage("check", environment=PRODUCTION_ENVIRONMENT | {"DJANGO_DEBUG": "1"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG must be off" in result.stderr


def test_production_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(PRODUCTION_ENVIRONMENT["SECRET_KEY"])
    environment = {k: v for k, v in PRODUCTION_ENVIRONMENT.items() if k != "SECRET_KEY"}
    environment["SECRET_KEY_FILE"] = str(secret_file)

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", environment=environment)

    assert result.returncode == 0, result.stderr


def test_development_secrets_are_generated_once_into_an_ignored_file(tmp_path: Path) -> None:
    environment = {"PORTAL_VAR_DIR": str(tmp_path)}
    script = "from django.conf import settings; print(settings.SECRET_KEY)"

    first = run_manage("shell", "-c", script, environment=environment)
    second = run_manage("shell", "-c", script, environment=environment)

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip()) >= 50
    assert (tmp_path / "dev-secrets.env").stat().st_mode & 0o077 == 0
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "var/dev-secrets.env"], cwd=BASE_DIR, check=False
    )
    assert ignored.returncode == 0


def test_env_example_explains_every_variable_the_settings_read() -> None:
    settings_source = (BASE_DIR / "portal" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'^    "([A-Z_]+)",$', settings_source, flags=re.MULTILINE)) & {
        "SECRET_KEY",
        "PORTAL_ENCRYPTION_KEYS",
        "PORTAL_ENCRYPTION_ACTIVE_KEY",
        "PORTAL_BLIND_INDEX_KEY",
        "PORTAL_AUDIT_HMAC_KEY",
    }
    example = (BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))

    assert "DATABASE_URL" in read
    assert read - documented == set()
