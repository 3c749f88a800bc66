"""Facts read once per request: the signed-in user's memberships and MFA enrolment.

A request asks "has this user enrolled MFA?" from the API permission or the page gate, and "which
organisations, in which roles?" from its selector and its service. Both answers come from one
query (``portal.accounts.permissions.principal_facts``); reading it again within the same request
would give the same rows, so ``remember(key, compute)`` keeps it for the rest of the request.

The memory lives only inside ``RequestCacheMiddleware`` (one dict per request, in a context
variable, dropped when the response is returned). Outside a request - Celery tasks, management
commands, tests that call services directly - nothing is kept and every call reads afresh, as
before. A save or delete of a membership, a user or an authenticator during the request empties
it (``forget_all``, wired to those models' signals in ``portal.core.apps``), so a request that
changes someone's roles never acts on the old ones afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.http import HttpRequest
from django.http.response import HttpResponseBase

T = TypeVar("T")

_memory: ContextVar[dict[Hashable, Any] | None] = ContextVar("portal_request_cache", default=None)


@contextmanager
def request_scope() -> Iterator[None]:
    """Remember facts until the block ends (one request)."""
    token = _memory.set({})
    try:
        yield
    finally:
        _memory.reset(token)


def remember(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, kept for the rest of the request; computed every time outside one."""
    memory = _memory.get()
    if memory is None:
        return compute()
    if key in memory:
        return memory[key]
    value = compute()
    memory[key] = value
    return value


def forget_all(**_signal_arguments: Any) -> None:
    """Drop everything remembered in this request (a membership, user or authenticator changed)."""
    memory = _memory.get()
    if memory:
        memory.clear()


class RequestCacheMiddleware:
    """Gives each request its own memory; placed first, so everything after it can use it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        with request_scope():
            return self.get_response(request)
