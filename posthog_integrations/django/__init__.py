"""PostHog for Django: ``MIDDLEWARE += ["posthog_integrations.django.PostHogMiddleware"]``,
``INSTALLED_APPS += ["posthog_integrations.django"]`` and a ``POSTHOG`` dict in settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PostHogMiddleware", "PosthogContextMiddleware"]


def __getattr__(name: str) -> Any:
    # Lazy, so that listing the app in INSTALLED_APPS imports no Django machinery early.
    if name in __all__:
        from . import middleware

        return getattr(middleware, name)
    raise AttributeError(name)
