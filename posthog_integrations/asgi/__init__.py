"""PostHog for any ASGI 3 app (Starlette, FastAPI, Django ASGI, Quart, ...)."""

from posthog_integrations.asgi.bootstrap import posthog_bootstrap
from posthog_integrations.asgi.middleware import PostHogMiddleware

__all__ = ["PostHogMiddleware", "posthog_bootstrap"]
