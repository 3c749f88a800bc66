"""WSGI entry of the load benchmark's gunicorn: the portal, plus the bare baseline endpoints.

The portal's own entry is ``portal.wsgi``; this one is used by ``bench/make_bench.py`` only and
refuses to start without ``BENCH_BASELINE_URLS=1``. It serves ``bench.urls`` (the portal's URLs
and ``/bench-baseline/``) with the settings otherwise unchanged.

With ``BENCH_REQUEST_LOG_DIR`` set, each worker also appends one line per request to its own file
there: when it ended, method, path, status, the worker's wall time, the worker's CPU time and the
number and wall time of its SQL queries (covering the streamed body too). CPU time and query
counts do not grow with waiting, so they describe an endpoint's cost even on a busy machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("BENCH_BASELINE_URLS") != "1":
    raise ImproperlyConfigured("bench.wsgi is for the load benchmark only (BENCH_BASELINE_URLS=1).")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.db import connection

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Queries:
    """A ``connection.execute_wrapper``: counts the request's queries and times them."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started


class _Measured:
    """Wraps the body iterable so the measurement ends when gunicorn closes it."""

    def __init__(self, body: Iterable[bytes], record: Callable[[], None], wrapper: Any) -> None:
        self.body = body
        self.record = record
        self.wrapper = wrapper

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if callable(close):
                close()
        finally:
            self.wrapper.__exit__(None, None, None)
            self.record()


def measured(app: WsgiApp, directory: Path) -> WsgiApp:
    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status: list[str] = []

        def start(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        queries = _Queries()
        wrapper = connection.execute_wrapper(queries)
        wall, cpu = time.perf_counter(), time.process_time()

        def record() -> None:
            line = (
                f"{time.time():.3f} {environ.get('REQUEST_METHOD', '-')} "
                f"{environ.get('PATH_INFO', '-')} {status[0] if status else '-'} "
                f"{(time.perf_counter() - wall) * 1e6:.0f} {(time.process_time() - cpu) * 1e6:.0f} "
                f"{queries.count} {queries.seconds * 1e6:.0f}\n"
            )
            with (directory / f"requests-{os.getpid()}.log").open("a") as log:
                log.write(line)

        wrapper.__enter__()
        try:
            body = app(environ, start)
        except BaseException:
            wrapper.__exit__(None, None, None)
            raise
        return _Measured(body, record, wrapper)

    return application


application: WsgiApp = get_wsgi_application()
# Read by the request handler on every request (BaseHandler sets the urlconf from it).
settings.ROOT_URLCONF = "bench.urls"
_log_directory = os.environ.get("BENCH_REQUEST_LOG_DIR", "")
if _log_directory:
    application = measured(application, Path(_log_directory))
