"""Fixtures for the Django-level crypto tests: the test-model tables and a test keyring.

The pure tests beside them (envelope, keyring, streams, blind index) use neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from portal.crypto import keys

from .helpers import K1, K2, K3, b64
from .testmodels import TEST_MODELS

KEY_MATERIAL = {"k1": K1, "k2": K2, "k3": K3}

UseKeys = Callable[..., None]


@pytest.fixture(scope="session")
def crypto_tables(django_db_setup: None, django_db_blocker: Any) -> None:
    """Create the test models' tables once in the test database (they have no migration)."""
    with django_db_blocker.unblock():
        existing = set(connection.introspection.table_names())
        with connection.schema_editor() as editor:
            for model in TEST_MODELS:
                if model._meta.db_table not in existing:
                    editor.create_model(model)


@pytest.fixture
def use_keys(settings: Any) -> Iterator[UseKeys]:
    """Configure the keyring from fixed test keys: ``use_keys("k1", "k2", active="k2")``.

    Starts on ``k1`` alone; the cached keyring is dropped on every change and at the end.
    """

    def apply(*key_ids: str, active: str) -> None:
        settings.PORTAL_ENCRYPTION_KEYS = ",".join(f"{i}:{b64(KEY_MATERIAL[i])}" for i in key_ids)
        settings.PORTAL_ENCRYPTION_ACTIVE_KEY = active
        keys.reset()

    apply("k1", active="k1")
    yield apply
    keys.reset()


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root
