"""The Celery application, configured from Django settings (the ``CELERY_`` namespace).

Tasks are JSON-only, acknowledged late with a prefetch of one, time-limited, and enqueued on
commit (``task.delay_on_commit``) so a rolled-back transaction never leaves a task behind.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
