"""Models used only by the crypto tests (tables made by the ``crypto_tables`` fixture).

They are registered under the ``crypto`` app label so ``rotate_keys`` discovers them like any
installed model, but they live in the tests: production code never imports this module, so
``makemigrations --check`` (a separate process) never sees them.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from portal.core.models import BaseModel
from portal.crypto.fields import EncryptedJSONField, EncryptedTextField


class SecretNote(BaseModel):
    body = EncryptedTextField()
    summary = EncryptedTextField(null=True, blank=True)
    title = models.CharField(max_length=50, blank=True, default="")

    # Declared so mypy's Django plugin, which never loads this tests-only module, sees it.
    objects: ClassVar[models.Manager[SecretNote]] = models.Manager()

    class Meta:
        app_label = "crypto"

    def __str__(self) -> str:
        return f"note {self.public_id}"


class SecretRecord(BaseModel):
    data = EncryptedJSONField(null=True, blank=True)

    objects: ClassVar[models.Manager[SecretRecord]] = models.Manager()

    class Meta:
        app_label = "crypto"

    def __str__(self) -> str:
        return f"record {self.public_id}"


TEST_MODELS: tuple[type[models.Model], ...] = (SecretNote, SecretRecord)
