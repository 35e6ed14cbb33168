"""The shop's Celery app: ``celery -A shop worker`` runs its tasks (``shop/tasks.py``).

Its configuration is the ``CELERY_*`` settings (``shop/settings.py``): the broker is
``CELERY_BROKER_URL``, a Redis on this machine by default. With ``POSTHOG["CELERY"]`` set, a
task runs in the context of the request that enqueued it: its events carry the visitor's
distinct id, session and tags.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop", include=["shop.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
