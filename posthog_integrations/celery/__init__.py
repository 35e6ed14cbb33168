"""PostHog for Celery: ``PostHogCelery(app)`` or ``PostHogCelery().init_app(app)``.

A task runs with the identity, session and tags of the context it was published in (the
request's, usually), and its failures are reported with them. Needs the optional extra:
``pip install 'posthog-integrations[celery]'``.
"""

from __future__ import annotations

try:
    import celery  # noqa: F401  (absolute: the Celery package, not this one)
except ImportError as error:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "posthog_integrations.celery needs Celery, an optional extra: "
        "pip install 'posthog-integrations[celery]'"
    ) from error

from .integration import OPTIONS, PostHogCelery

__all__ = ["OPTIONS", "PostHogCelery"]
