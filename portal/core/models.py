"""The shared abstract base model and the platform's own small tables."""

import uuid

from django.db import models


def field_names(model: type[models.Model], prefix: str = "") -> list[str]:
    """The names of the model's column-backed fields, each after ``prefix`` (``"author__"``):
    for ``QuerySet.only()`` over a model and the relations it is read with."""
    return [f"{prefix}{field.name}" for field in model._meta.concrete_fields]


class BaseModel(models.Model):
    """Every domain row has a public UUID (the only id that leaves the server) and timestamps."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class HealthPing(models.Model):
    """A row written by the health-ping task: proof that a worker ran a task from the broker."""

    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    worker = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ping {self.token}"
