"""Authentication events in the audit trail (actor, IP and time come with every audit event).

An event names the account when there is one and a reason; it never holds a password, a code, a
token or the text typed as a login name (people type passwords into it by mistake).
"""

from __future__ import annotations

from portal.accounts.models import User
from portal.audit.models import Outcome
from portal.audit.services import audit_record

DetailValue = str | int | bool | None


def user_for_login(login: object) -> User | None:
    """The account a sign-in attempt named, if it exists (to attribute the event, not to log
    the name)."""
    text = str(login or "")
    return User.objects.filter(email__iexact=text).first() if text else None


def auth_event_record(
    *,
    action: str,
    user: User | None,
    outcome: str = Outcome.ALLOWED,
    details: dict[str, DetailValue] | None = None,
) -> None:
    audit_record(
        actor=user,
        action=action,
        object_type="user",
        object_id=user.public_id if user is not None else None,
        outcome=outcome,
        details=details,
    )
