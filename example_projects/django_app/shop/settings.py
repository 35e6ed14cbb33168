"""Settings of the example shop: the two PostHog lines are ``INSTALLED_APPS`` and ``MIDDLEWARE``.

Without ``POSTHOG_HOST`` events go to the local capture endpoint (``posthog-integrations sink``).
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-shop-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "posthog_integrations.django",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Right after AuthenticationMiddleware: it sees request.user, and what comes after it (more
    # middleware, then the view) runs inside the request's context, exceptions included.
    "posthog_integrations.django.PostHogMiddleware",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

LOCAL_ENDPOINT = "http://127.0.0.1:8010"
_posthog_host = os.environ.get("POSTHOG_HOST") or LOCAL_ENDPOINT
POSTHOG = {
    "HOST": _posthog_host,
    # The local endpoint takes any key; anywhere else the key must come from the environment.
    "API_KEY": os.environ.get("POSTHOG_API_KEY") or (
        "phc_local" if _posthog_host == LOCAL_ENDPOINT else None),
    "CAPTURE_PAGEVIEWS": True,
    # The tasks a request enqueues run in its context: they carry the visitor's identity.
    "CELERY": True,
}

# Celery (shop/celery.py): a Redis on this machine unless CELERY_BROKER_URL says otherwise.
# CELERY_TASK_ALWAYS_EAGER=1 runs each task in the request that enqueues it, with no broker.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "redis://localhost:6379/0"
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER") == "1"
