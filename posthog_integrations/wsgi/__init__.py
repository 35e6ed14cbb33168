"""PostHog for any WSGI app (the Flask extension builds on it)."""

from posthog_integrations.wsgi.middleware import PostHogMiddleware

__all__ = ["PostHogMiddleware"]
