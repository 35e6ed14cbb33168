"""The test project as a user might set it up: the middleware in MIDDLEWARE and settings.POSTHOG,
but ``posthog_integrations.django`` missing from INSTALLED_APPS.

``POSTHOG['HOST']`` is the local endpoint named by the ``TEST_SINK_URL`` variable.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "posthog_integrations.django"]
POSTHOG = {"API_KEY": "phc_from_django_settings",
           "HOST": os.environ.get("TEST_SINK_URL", "http://127.0.0.1:9")}
