"""Enqueueing tasks: always after the surrounding transaction commits, never before."""

import logging
from typing import Any

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)


def send_task_now(task: Task[..., Any], *args: Any) -> bool:
    """Send ``task`` with ``args`` (ids only); return False, logged, when the broker is down.

    The caller's work is already committed and recorded; a periodic re-drive of the recorded
    state sends it later, so a broker outage never turns a successful request into an error.
    """
    try:
        task.delay(*args)
    except (BrokerError, ConnectionError, TimeoutError, OSError):
        logger.warning(
            "queue.enqueue_failed", extra={"task": task.name, "ids": [str(arg) for arg in args]}
        )
        return False
    return True


def enqueue_on_commit(task: Task[..., Any], *args: Any) -> None:
    """Send ``task`` with ``args`` (ids only, never PHI) once the current transaction commits.

    A rolled-back transaction sends nothing, and a worker never sees a row that is not there yet.
    """
    transaction.on_commit(lambda: send_task_now(task, *args))
