"""The project's URLs plus Django REST framework views that fail in the ways DRF handles."""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework import status, viewsets
from rest_framework.decorators import api_view
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

import posthog_integrations as posthog

from .urls import urlpatterns as project_urlpatterns


class PaymentsDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "payments are down"


class LedgerBroken(Exception):
    pass


class OrderView(APIView):
    def get(self, request: Request, order: int) -> Response:
        posthog.tag("order", order)
        raise APIException(f"order {order} could not be priced")  # DRF answers 500

    def post(self, request: Request, order: int) -> Response:
        raise ValidationError({"quantity": ["must be positive"]})  # DRF answers 400


@api_view(["GET"])
def ledger(request: Request) -> Response:
    raise LedgerBroken("ledger out of balance")  # not DRF's: DRF re-raises it


class PaymentViewSet(viewsets.ViewSet):
    def list(self, request: Request) -> Response:
        raise PaymentsDown()

    def retrieve(self, request: Request, pk: Any = None) -> Response:
        return Response({"id": pk})


router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")

urlpatterns = [
    path("api/orders/<int:order>/", OrderView.as_view()),
    path("api/ledger/", ledger),
    path("api/", include(router.urls)),
    *project_urlpatterns,
]


def everything_is_a_500(exc: Exception, context: dict[str, Any]) -> Response:
    """A project's own handler: every exception becomes a JSON 500."""
    return Response({"error": type(exc).__name__}, status=500)
