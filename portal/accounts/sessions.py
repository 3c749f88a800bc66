"""Session lifetime: 15 idle minutes and 12 hours at most, for browser sessions and app tokens.

Both kinds are rows of Django's session store: an allauth headless app's ``X-Session-Token`` is the
key of a server-side session. Each signed-in session records when the sign-in happened and when it
was last used; a session past either limit is deleted before it can serve a request.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from allauth.headless.tokens.strategies.sessions import SessionTokenStrategy
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone

from portal.accounts.auth_events import auth_event_record
from portal.accounts.models import User

STARTED_AT_KEY = "portal.session.started_at"
LAST_SEEN_AT_KEY = "portal.session.last_seen_at"
# Writing the session on every request would turn each read into a database write and let
# parallel requests overwrite each other's session data; a minute of granularity costs at most a
# minute of idle time (the session ends early, never late).
TOUCH_INTERVAL_SECONDS = 60
# Set on the request before a sign-out that the user did not ask for, so the event says why.
LOGOUT_REASON_ATTRIBUTE = "portal_logout_reason"


class ExpiryReason(StrEnum):
    IDLE = "idle_timeout"
    ABSOLUTE = "absolute_timeout"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def session_is_signed_in(session: SessionBase) -> bool:
    return SESSION_KEY in session


def session_stamp_sign_in(session: SessionBase, *, now: datetime | None = None) -> None:
    """Start both clocks; called on every sign-in (browser or app)."""
    moment = _epoch(now or timezone.now())
    session[STARTED_AT_KEY] = moment
    session[LAST_SEEN_AT_KEY] = moment


def session_expiry_reason(
    session: SessionBase, *, now: datetime | None = None
) -> ExpiryReason | None:
    """Why this signed-in session is over, or None while it is alive.

    A signed-in session without the stamps (one created before they existed) counts as starting
    now rather than as never expiring.
    """
    current = _epoch(now or timezone.now())
    started_at = session.get(STARTED_AT_KEY)
    last_seen_at = session.get(LAST_SEEN_AT_KEY)
    if not isinstance(started_at, int) or not isinstance(last_seen_at, int):
        session_stamp_sign_in(session, now=now)
        return None
    if current - started_at >= settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds():
        return ExpiryReason.ABSOLUTE
    if current - last_seen_at >= settings.SESSION_IDLE_TIMEOUT.total_seconds():
        return ExpiryReason.IDLE
    return None


def session_touch(session: SessionBase, *, now: datetime | None = None) -> None:
    """Record activity (at most once per ``TOUCH_INTERVAL_SECONDS``)."""
    current = _epoch(now or timezone.now())
    last_seen_at = session.get(LAST_SEEN_AT_KEY)
    if not isinstance(last_seen_at, int) or current - last_seen_at >= TOUCH_INTERVAL_SECONDS:
        session[LAST_SEEN_AT_KEY] = current


def session_discard(session_key: str | None) -> None:
    """Delete a session from the store and its row in the user's session list."""
    if not session_key:
        return
    UserSession.objects.filter(session_key=session_key).delete()


class ExpiringSessionTokenStrategy(SessionTokenStrategy):
    """allauth's session-token strategy with the idle and absolute limits applied.

    Used by allauth's ``/_allauth/app/`` views and by DRF's ``X-Session-Token`` authentication
    alike, so an expired token is refused everywhere.
    """

    def lookup_session(self, session_token: str) -> SessionBase | None:
        session = super().lookup_session(session_token)
        if session is None or not session_is_signed_in(session):
            return session
        reason = session_expiry_reason(session)
        if reason is not None:
            user = User.objects.filter(pk=session.get(SESSION_KEY)).first()
            session_discard(session.session_key)
            session.delete()
            auth_event_record(
                action="auth.logout", user=user, details={"reason": str(reason), "client": "app"}
            )
            return None
        session_touch(session)
        if session.modified:
            session.save()
        return session
