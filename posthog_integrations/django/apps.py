"""``INSTALLED_APPS += ["posthog_integrations.django"]``: configure PostHog from settings."""

from __future__ import annotations

from django.apps import AppConfig


class PostHogConfig(AppConfig):
    name = "posthog_integrations.django"
    label = "posthog_integrations"
    verbose_name = "PostHog"

    def ready(self) -> None:
        import posthog_integrations

        from . import celery_binding, checks, conf  # noqa: F401  (checks register themselves)

        config = conf.load()
        posthog_integrations.configure(**config.client_options)
        celery_binding.bind_once(config.celery, None)
