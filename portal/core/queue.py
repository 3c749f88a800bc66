"""Enqueueing tasks: always after the surrounding transaction commits, never before."""

from functools import partial
from typing import Any

from celery import Task
from django.db import transaction


def enqueue_on_commit(task: Task[..., Any], *args: Any) -> None:
    """Send ``task`` with ``args`` (ids only, never PHI) once the current transaction commits.

    A rolled-back transaction sends nothing, and a worker never sees a row that is not there yet.
    """
    transaction.on_commit(partial(task.delay, *args))
