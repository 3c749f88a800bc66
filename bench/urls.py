"""The benchmark's URLconf: the portal's, plus the bare baseline endpoints (``bench.baseline``).

Only ``bench.wsgi`` (the benchmark's gunicorn) selects it, and only with ``BENCH_BASELINE_URLS=1``;
importing it otherwise is refused, so the bare endpoints cannot be switched on by accident.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, include, path

if os.environ.get("BENCH_BASELINE_URLS") != "1":
    raise ImproperlyConfigured("bench.urls is for the load benchmark only (BENCH_BASELINE_URLS=1).")

urlpatterns: list[URLPattern | URLResolver] = [
    path("bench-baseline/", include("bench.baseline")),
    path("", include("portal.urls")),
]
