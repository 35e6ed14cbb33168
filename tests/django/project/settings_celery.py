"""The test project with ``POSTHOG["CELERY"]`` set and the URL conf of ``celery_app``.

``POSTHOG['HOST']`` is the local endpoint named by the ``TEST_SINK_URL`` variable;
``WITHOUT_APP=1`` leaves ``posthog_integrations.django`` out of INSTALLED_APPS.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

if os.environ.get("WITHOUT_APP") == "1":
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "posthog_integrations.django"]
ROOT_URLCONF = "tests.django.project.celery_app"
POSTHOG = {"API_KEY": "phc_from_django_settings",
           "HOST": os.environ.get("TEST_SINK_URL", "http://127.0.0.1:9"),
           "CELERY": {"PROPAGATE_TAGS": ["plan"]}}
