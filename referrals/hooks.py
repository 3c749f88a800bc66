"""Extension points for the apps that build on referrals (messaging, reports).

Dependencies point one way (portal <- referrals <- messaging, reports), so referrals cannot import
those apps; they register here from their ``AppConfig.ready()`` instead.

- ``register_referral_event_handler(handler)``: ``handler(event)`` is called for every timeline
  event (every ``EventKind``: created, updated, signed_off, submitted, reviewed, info_requested,
  answered, accepted, declined, scheduled, no_show, treatment_started, completed, closed,
  cancelled, attachment_added, urgent_alert, overdue) inside the service's transaction, after the
  event row is written. A handler that raises rolls the whole action back, so it must only fail
  when the action must not happen. Handlers should look at ``event.kind`` and ignore kinds they
  do not handle.
- ``register_referral_thread_resolver(resolver)``: ``resolver(referral)`` returns the public id
  of the referral's message thread (or None); the referral detail shows it as ``thread``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from referrals.models import Referral, ReferralEvent

ReferralEventHandler = Callable[[ReferralEvent], None]
ThreadResolver = Callable[[Referral], uuid.UUID | None]

_event_handlers: list[ReferralEventHandler] = []
_thread_resolvers: list[ThreadResolver] = []


def register_referral_event_handler(handler: ReferralEventHandler) -> None:
    """Register ``handler`` once (registering the same function again changes nothing)."""
    if handler not in _event_handlers:
        _event_handlers.append(handler)


def unregister_referral_event_handler(handler: ReferralEventHandler) -> None:
    if handler in _event_handlers:
        _event_handlers.remove(handler)


def dispatch_referral_event(event: ReferralEvent) -> None:
    for handler in list(_event_handlers):
        handler(event)


def register_referral_thread_resolver(resolver: ThreadResolver) -> None:
    if resolver not in _thread_resolvers:
        _thread_resolvers.append(resolver)


def unregister_referral_thread_resolver(resolver: ThreadResolver) -> None:
    if resolver in _thread_resolvers:
        _thread_resolvers.remove(resolver)


def referral_thread_id(referral: Referral) -> uuid.UUID | None:
    for resolver in list(_thread_resolvers):
        thread_id = resolver(referral)
        if thread_id is not None:
            return thread_id
    return None
