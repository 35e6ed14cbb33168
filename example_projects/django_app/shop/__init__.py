"""The example shop. Its Celery app is loaded with it, so that its tasks are bound to it
wherever Django starts (the web server, ``manage.py``, the worker)."""

from __future__ import annotations

from .celery import app as celery_app

__all__ = ["celery_app"]
