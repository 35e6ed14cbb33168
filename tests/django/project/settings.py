"""A small Django project for the integration tests, configured like a real one."""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.project.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "posthog_integrations.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "posthog_integrations.django.PostHogMiddleware",
    "tests.django.project.middleware.AsyncOnlyMiddleware",
    "tests.django.project.middleware.FailingMiddleware",
    "tests.django.project.middleware.TokenAuthMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # A file, not :memory:, so that threads serving concurrent requests share it.
        "NAME": os.path.join(tempfile.mkdtemp(prefix="posthog-django-tests-"), "db.sqlite3"),
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The tests point the client at their own local endpoint (see conftest.py).
POSTHOG = {"API_KEY": "phc_django_tests", "HOST": "http://127.0.0.1:9", "RETRY_BASE_DELAY": 0.02}
