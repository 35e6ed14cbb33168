"""A Django project with a Celery app, in one module, for the Celery end-to-end test.

This module is the settings (``DJANGO_SETTINGS_MODULE``), the URL conf, the Celery app
(``celery -A tests.e2e.django_celery_project worker``) and the WSGI application (gunicorn) at
once. PostHog is configured from the environment (``POSTHOG_API_KEY``, ``POSTHOG_HOST``) and
``POSTHOG["CELERY"]``; the broker is ``CELERY_BROKER_URL``.

A visitor logs in with an ``X-Test-User`` header (their user id). ``POST /orders/<id>/`` tags
the request, captures "order placed" and enqueues two tasks: one that captures
"order confirmed", one that fails.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from celery import Celery
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

import posthog_integrations as posthog

SECRET_KEY = "e2e-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
USE_TZ = True
INSTALLED_APPS = ["posthog_integrations.django"]
MIDDLEWARE = [f"{__name__}.HeaderLogin", "posthog_integrations.django.PostHogMiddleware"]
POSTHOG = {"FLUSH_INTERVAL": 0.2, "CELERY": {"PROPAGATE_TAGS": ["plan"]}}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)
celery_app = Celery("e2e", broker=os.environ.get("CELERY_BROKER_URL"))


class LoggedInUser:
    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class HeaderLogin:
    """Logs the request in as the user ``X-Test-User`` names, as a session would."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        user_id = request.META.get("HTTP_X_TEST_USER")
        if user_id:
            request.user = LoggedInUser(user_id)  # type: ignore[assignment]
        return self.get_response(request)


@celery_app.task
def confirm_order(order_id: int) -> None:
    posthog.capture("order confirmed", properties={"order_id": order_id,
                                                   "task_pid": os.getpid()})


@celery_app.task
def charge_card(order_id: int) -> None:
    raise RuntimeError(f"card declined for order {order_id}")


def place_order(request: HttpRequest, order_id: int) -> JsonResponse:
    posthog.tag("plan", "pro")  # allowed to travel (PROPAGATE_TAGS)
    posthog.tag("cart_note", "leave at the door")  # stays with the request
    posthog.capture("order placed", properties={"order_id": order_id})
    confirm_order.delay(order_id)
    charge_card.delay(order_id)
    return JsonResponse({"order_id": order_id, "web_pid": os.getpid()})


urlpatterns = [path("orders/<int:order_id>/", place_order)]

application = get_wsgi_application()
