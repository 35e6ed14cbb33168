"""``settings.POSTHOG["CELERY"]``: the project's Celery tasks carry the request's context.

Bound once per process, where the settings are read (the app's ``ready()``, or the middleware
that configures the client itself): in the web process, so that publishing a task sends the
request's identity with it, and in the worker, which Celery's Django fixup sets up from the
same settings, so that the task runs in it. A Celery app that has a ``PostHogCelery`` of its
own keeps that one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from posthog_integrations.core.client import Client

if TYPE_CHECKING:  # Celery is an optional extra: imported only when the setting asks for it
    from posthog_integrations.celery import PostHogCelery

_lock = threading.Lock()
# The integration bound from settings; kept here for the life of the process.
_bound: PostHogCelery | None = None


def bind_once(options: dict[str, Any] | None, client: Client | None) -> None:
    """Bind ``PostHogCelery(client=client, **options)`` to every Celery app, the first time
    this process is configured with ``options`` set (None: ``POSTHOG["CELERY"]`` is off).

    ``client`` None is the default client, which Django configures from settings.
    """
    global _bound
    if options is None:
        return
    with _lock:
        if _bound is not None:
            return
        try:
            from posthog_integrations.celery import PostHogCelery
        except ImportError as error:
            raise ImproperlyConfigured(f"settings.POSTHOG['CELERY'] is set: {error}") from None
        try:
            extension = PostHogCelery(client=client, **options)
        except ValueError as error:  # conf checked the values: a change in PostHogCelery
            raise ImproperlyConfigured(f"settings.POSTHOG['CELERY']: {error}") from None
        extension.init_every_app()
        _bound = extension
