"""Platform tasks."""

import socket

from celery import shared_task

from portal.core.services import health_ping_record


@shared_task(name="portal.health_ping", ignore_result=True)
def health_ping(token: str) -> None:
    """Write a HealthPing row for ``token`` (idempotent), so a check can see a worker is alive."""
    health_ping_record(token=token, worker=socket.gethostname())
