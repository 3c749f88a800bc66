"""An audit scope around every Celery task (no request id, no IP: tasks act as the system)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from celery.signals import task_postrun, task_prerun

from portal.audit.context import AuditContext, audit_scope

# Open scopes by task id: prerun and postrun are separate signal calls.
_open_scopes: dict[str, AbstractContextManager[AuditContext]] = {}


def _open_task_scope(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id is None:
        return
    scope = audit_scope()
    scope.__enter__()
    _open_scopes[task_id] = scope


def _close_task_scope(task_id: str | None = None, **kwargs: Any) -> None:
    scope = _open_scopes.pop(task_id, None) if task_id is not None else None
    if scope is not None:
        scope.__exit__(None, None, None)


def connect() -> None:
    task_prerun.connect(_open_task_scope, weak=False, dispatch_uid="portal.audit.task_scope_open")
    task_postrun.connect(
        _close_task_scope, weak=False, dispatch_uid="portal.audit.task_scope_close"
    )
