"""The audit scope of the current request or task: request id, client IP, and deferred events.

A scope is opened by ``AuditContextMiddleware`` for each request and by the Celery signal
handlers for each task (tasks get no request id or IP). Services read it through
``current_context()``; they never take a request argument.

The scope also carries events that must outlive the caller's transaction (security events,
denials). Inside a transaction such an event cannot simply be inserted: if the transaction rolls
back, the row goes with it, and ``transaction.on_commit`` never fires on a rollback. Nor can a
second connection insert it at once on every backend: SQLite allows one writer, and the writer
is the very connection whose transaction is open. So the event waits in the scope and is
written when the scope closes, after every transaction of the request or task has ended, and
earlier if the transaction commits. See services.security_event_record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.db import transaction

logger = logging.getLogger("portal.security")


@dataclass
class DeferredEvent:
    """An event waiting for the surrounding transaction to end; ``write`` inserts it once."""

    write: Callable[[], None]
    written: bool = False

    def flush(self) -> None:
        if self.written:
            return
        self.write()
        self.written = True


@dataclass
class AuditContext:
    request_id: str = ""
    ip: str | None = None
    deferred: list[DeferredEvent] = field(default_factory=list)


_current: ContextVar[AuditContext | None] = ContextVar("portal_audit_context", default=None)


def current_context() -> AuditContext | None:
    return _current.get()


@contextmanager
def audit_scope(*, request_id: str = "", ip: str | None = None) -> Iterator[AuditContext]:
    """Run a request, task or command in an audit scope; deferred events are written at exit.

    A scope closing inside a still-open transaction of an outer scope (a task run eagerly inside
    a request) hands its deferred events to the outer scope rather than to that transaction.
    """
    context = AuditContext(request_id=request_id, ip=ip)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
        _close(context)


def _close(context: AuditContext) -> None:
    pending = [event for event in context.deferred if not event.written]
    if not pending:
        return
    outer = _current.get()
    if outer is not None and transaction.get_connection().in_atomic_block:
        outer.deferred.extend(pending)
        return
    for event in pending:
        try:
            event.flush()
        except Exception:
            # The response or task result already exists; losing the row must not hide it.
            # The log line the caller wrote before deferring is the remaining record.
            logger.critical("audit.security_event_lost", exc_info=True)
