"""A Django project in one module, served by gunicorn in the end-to-end tests.

This module is the settings (``DJANGO_SETTINGS_MODULE``), the URL conf and the WSGI application
at once; PostHog is configured from the environment (``POSTHOG_API_KEY``, ``POSTHOG_HOST``).
``DJANGO_CHAIN=async`` puts an async-only middleware after PostHog's, so that Django runs the
middleware chain on an event loop even under WSGI.

``GET /stream/<visitor>/`` tags the request, then streams a body whose generator holds
``with posthog.new_context():`` open across its yields, slowly, for as long as anyone
reads (``STREAM_CHUNKS`` chunks at most), and captures "stream closed" when it is closed.
``GET /visit/<n>/`` captures "visit" with the request number.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

import posthog_integrations as posthog

SECRET_KEY = "e2e-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
USE_TZ = True
INSTALLED_APPS = ["posthog_integrations.django"]
MIDDLEWARE = ["posthog_integrations.django.PostHogMiddleware"]
if os.environ.get("DJANGO_CHAIN") == "async":
    MIDDLEWARE.append("tests.django.project.middleware.AsyncOnlyMiddleware")
POSTHOG = {"FLUSH_INTERVAL": 0.2}

STREAM_CHUNK = b"x" * 16384
STREAM_CHUNKS = int(os.environ.get("STREAM_CHUNKS", "2000"))


def stream(request: HttpRequest, visitor: str) -> StreamingHttpResponse:
    posthog.tag("visitor_tag", f"tag-of-{visitor}")

    def body() -> Iterator[bytes]:
        with posthog.new_context():
            posthog.tag("stream_tag", f"stream-of-{visitor}")
            try:
                for number in range(STREAM_CHUNKS):
                    posthog.capture("chunk sent", properties={"chunk": number})
                    yield STREAM_CHUNK
                    time.sleep(0.01)
            finally:
                posthog.capture("stream closed")

    return StreamingHttpResponse(body(), content_type="application/octet-stream")


def visit(request: HttpRequest, number: int) -> HttpResponse:
    posthog.capture("visit", properties={"request_number": number})
    return HttpResponse(f"visit {number}")


urlpatterns = [
    path("stream/<str:visitor>/", stream),
    path("visit/<int:number>/", visit),
]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)
application = get_wsgi_application()
