"""``manage.py check``: what would silently lose events or identity, said before it happens."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from posthog_integrations.web.request import TRACING_HEADERS

from . import conf

MIDDLEWARE_PATHS = (
    "posthog_integrations.django.PostHogMiddleware",
    "posthog_integrations.django.middleware.PostHogMiddleware",
    "posthog_integrations.django.PosthogContextMiddleware",
)
AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    raw = conf.posthog_settings()
    disabled = raw.get("DISABLED") or os.environ.get("POSTHOG_DISABLED", "").lower() in (
        "1", "true", "yes", "on")
    if not raw.get("API_KEY") and not os.environ.get("POSTHOG_API_KEY") and not disabled:
        found.append(Warning(
            "No PostHog API key: events will not be sent.",
            hint="Set POSTHOG = {'API_KEY': 'phc_...'} in settings or the POSTHOG_API_KEY "
                 "environment variable, or POSTHOG['DISABLED'] = True to silence this.",
            id="posthog_integrations.W001",
        ))
    # An unknown key is no warning here: conf.load() refuses it at startup (ImproperlyConfigured).
    found.extend(_middleware_order(raw))
    found.extend(_cors_headers())
    return found


def _middleware_order(raw: Any) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    ours = next((i for i, path in enumerate(middleware) if path in MIDDLEWARE_PATHS), None)
    if ours is None or not raw.get("IDENTIFY_USER", True):
        return []
    if AUTHENTICATION_MIDDLEWARE in middleware[ours:]:
        return [Warning(
            "PostHogMiddleware comes before AuthenticationMiddleware: an event captured or a "
            "flag read before AuthenticationMiddleware has run (by the middleware between "
            "them) cannot see the logged-in user, and the request keeps the "
            "X-POSTHOG-DISTINCT-ID header's id, or none.",
            hint="Put PostHogMiddleware right after AuthenticationMiddleware in MIDDLEWARE, or "
                 "set POSTHOG['IDENTIFY_USER'] = False.",
            id="posthog_integrations.W003",
        )]
    return []


def _cors_headers() -> list[CheckMessage]:
    if "corsheaders" not in getattr(settings, "INSTALLED_APPS", ()):
        return []
    defaults: tuple[str, ...] = ()
    with contextlib.suppress(ImportError):  # CORS_ALLOW_HEADERS unset: corsheaders' defaults
        from corsheaders.defaults import default_headers

        defaults = tuple(default_headers)
    allowed = {str(h).lower() for h in getattr(settings, "CORS_ALLOW_HEADERS", defaults)}
    missing = [header for header in TRACING_HEADERS if header.lower() not in allowed]
    if not missing:
        return []
    return [Warning(
        f"CORS_ALLOW_HEADERS does not allow {', '.join(missing)}: browsers will block "
        "posthog-js requests that carry them, so the backend cannot link events to the user.",
        hint="CORS_ALLOW_HEADERS = (*default_headers, *posthog_integrations.web.TRACING_HEADERS)"
             " with default_headers from corsheaders.defaults.",
        id="posthog_integrations.W004",
    )]
