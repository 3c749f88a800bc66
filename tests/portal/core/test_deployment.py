"""The compose file parses and every service's command names an entry point that exists."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands

BASE_DIR = Path(__file__).resolve().parents[3]
PORTAL_SERVICES = {"migrate", "web", "worker", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def assert_entry_point_exists(command: list[str]) -> None:
    program = command[0]
    if program == "gunicorn":
        module_name, _, attribute = command[1].partition(":")
        application = getattr(importlib.import_module(module_name), attribute)
        assert callable(application)
        assert shutil.which("gunicorn") or importlib.import_module("gunicorn")
    elif program == "celery":
        assert command[1:3] == ["-A", "portal"]
        app = importlib.import_module("portal").celery_app
        assert app.main == "portal"
        assert command[3] in celery_cli.commands, f"unknown celery subcommand {command[3]}"
    elif program == "python":
        assert command[1] == "manage.py"
        assert (BASE_DIR / "manage.py").is_file()
        assert command[2] in get_commands(), f"unknown management command {command[2]}"
    elif program == "redis-server":
        assert "--appendonly" in command
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    else:
        pytest.fail(f"no check for the entry point {program!r}")


def test_compose_has_every_production_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker",
        "beat",
        "mailpit",
    }
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("service", sorted(PORTAL_SERVICES | {"redis"}))
def test_each_service_command_names_a_real_entry_point(
    compose: dict[str, Any], service: str
) -> None:
    command = compose["services"][service]["command"]

    assert isinstance(command, list)
    assert_entry_point_exists(command)


def test_web_worker_and_beat_share_one_image_and_production_settings(
    compose: dict[str, Any],
) -> None:
    images = {compose["services"][name]["image"] for name in PORTAL_SERVICES}
    assert images == {"ketamine-referral-portal:latest"}
    for name in PORTAL_SERVICES:
        environment = compose["services"][name]["environment"]
        assert environment["DJANGO_ENV"] == "production"
        assert environment["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert environment["DATABASE_URL"].startswith("postgres://")


@pytest.mark.parametrize("service", ["postgres", "redis", "web", "worker", "mailpit"])
def test_long_running_services_have_health_checks(compose: dict[str, Any], service: str) -> None:
    assert compose["services"][service]["healthcheck"]["test"][0] == "CMD"


def test_dockerfile_default_command_is_the_web_entry_point() -> None:
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    command = yaml.safe_load(cmd_line.removeprefix("CMD "))

    assert_entry_point_exists(command)
