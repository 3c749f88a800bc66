"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

The schema is fetched from ``/api/schema/`` of the Django WSGI application in this process (no
server), and every operation is called with generated input as a signed-in provider of practice A
(an app client: ``X-Session-Token`` from allauth's headless login with TOTP, so MFA is enrolled
and satisfied). Path parameters name practice A's real objects (``tests.world``), so bodies and
queries reach the services instead of stopping at a 404.

- As practice A's provider: no response is a 5xx, every status code, content type and body is one
  the schema documents, and a body that violates the schema is refused with a 4xx.
- As practice B's provider with practice A's object ids: every operation on an object answers 404,
  whatever the input, and nothing changes.

``make test`` runs a few derandomized examples per operation (same cases every run, so CI is
stable); ``make fuzz`` runs many random ones (``FUZZ_MAX_EXAMPLES``, ``FUZZ_RANDOM=1``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err

from portal.wsgi import application
from tests.personas import Cast
from tests.portal.accounts.helpers import app_sign_in
from tests.world import World, build_world, everything

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Argon2 is what production uses; the cast's passwords only need to exist here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextmanager
def in_process_wsgi() -> Iterator[None]:
    """The WSGI handler closes "old" connections around each request, which would close the
    test's own transaction; Django's test client disconnects the same signal for this reason
    (and connects it again after each of its requests, so no test client call may run inside)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(cast: Cast) -> World:
    return build_world(cast)


def _token(cast: Cast, persona: str) -> str:
    signed_in = cast[persona]
    assert signed_in.user is not None
    return app_sign_in(Client(), signed_in.user.email, signed_in.password, signed_in.totp_secret)


def _operations() -> list[Any]:
    """The API's operations, from the schema the application serves."""
    api_schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    operations = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"the schema has an operation schemathesis cannot read: {result.err()}")
        operations.append(result.ok())
    # Guards the walk itself: an empty or broken schema would make every check below vacuous.
    assert len(operations) >= 40, [operation.label for operation in operations]
    return operations


def _fuzz(strategy: Any, test: Callable[[Any], None]) -> str | None:
    """Run ``test`` over generated cases; the failure report (after shrinking), or None."""

    @HYPOTHESIS
    @given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation can be made schema-violating (its path is pinned).
        return None
    except (AssertionError, BaseExceptionGroup) as failure:
        return str(failure)
    return None


def _body_was_negated(case: Any) -> bool:
    components = case.meta.components if case.meta is not None else {}
    body = components.get(ParameterLocation.BODY)
    return body is not None and body.mode == GenerationMode.NEGATIVE


def _pinned_path(operation: Any, world: World) -> dict[str, str]:
    ids = world.path_ids(operation.path)
    return {parameter.name: ids[parameter.name] for parameter in operation.path_parameters}


def test_the_api_answers_a_provider_within_its_schema(world: World, cast: Cast) -> None:
    headers = {"X-Session-Token": _token(cast, "provider")}

    def call(case: Any) -> None:
        # A schema-violating query (a page_size of letters) falls back to the default page, as
        # DRF's pagination does; a schema-violating body must be refused.
        checks = [*CONFORMANCE, negative_data_rejection] if _body_was_negated(case) else CONFORMANCE
        case.call_and_validate(headers=headers, checks=checks)

    failures = []
    with in_process_wsgi():
        for operation in _operations():
            modes = [GenerationMode.POSITIVE]
            if operation.body:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                path = _pinned_path(operation, world)
                failure = _fuzz(operation.as_strategy(mode, path_parameters=path), call)
                if failure is not None:
                    failures.append(f"{operation.label} ({mode.value}):\n{failure}")
    assert not failures, "\n\n".join(failures)


def test_another_practice_gets_404_for_every_object_of_the_first(world: World, cast: Cast) -> None:
    headers = {"X-Session-Token": _token(cast, "outsider")}
    secrets = [world.referral.number, world.draft.number, str(world.report.public_id)]
    before = everything()

    def call(case: Any) -> None:
        response = case.call(headers=headers)
        assert response.status_code == 404, (case.method, case.formatted_path, response.text)
        assert response.json()["code"] == "not_found", response.text
        for secret in secrets:
            assert secret not in response.text

    failures = []
    with in_process_wsgi():
        object_operations = [operation for operation in _operations() if operation.path_parameters]
        assert len(object_operations) >= 30
        for operation in object_operations:
            path = _pinned_path(operation, world)
            strategy = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path)
            failure = _fuzz(strategy, call)
            if failure is not None:
                failures.append(f"{operation.label}:\n{failure}")
    assert not failures, "\n\n".join(failures)
    assert everything() == before
