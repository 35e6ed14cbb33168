"""The project's URLs plus a view that logs an exception it handled."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.urls import path

from .urls import urlpatterns as project_urlpatterns

logger = logging.getLogger("tests.django.project")


def logged(request: HttpRequest) -> HttpResponse:
    try:
        {}["basket"]
    except KeyError:
        logger.exception("the basket was gone")
    return HttpResponse("recovered")


urlpatterns = [path("logged/", logged), *project_urlpatterns]
