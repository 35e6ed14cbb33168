"""PostHog for Flask: ``PostHog(app)`` or ``PostHog().init_app(app)``."""

from posthog_integrations.flask.extension import PostHog

__all__ = ["PostHog"]
