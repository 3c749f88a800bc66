"""Platform services."""

from django.db import transaction

from portal.core.models import HealthPing


@transaction.atomic
def health_ping_record(*, token: str, worker: str = "") -> HealthPing:
    """Record a health ping once per token; running it again changes nothing."""
    ping, _created = HealthPing.objects.get_or_create(token=token, defaults={"worker": worker})
    return ping
