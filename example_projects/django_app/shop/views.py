"""The shop's views: what a product team captures, written as they would write it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

import posthog_integrations as posthog

from .tasks import send_order_confirmation

_order_numbers = itertools.count(1001)


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<h1>Shop</h1>")


@csrf_exempt
def signup(request: HttpRequest) -> JsonResponse:
    user_id = f"user-{request.POST['username']}"
    posthog.identify_context(user_id)  # this request's events now belong to the new user
    posthog.capture("signed up", properties={"plan": request.POST.get("plan", "free")})
    return JsonResponse({"user_id": user_id})


@csrf_exempt
def add_to_cart(request: HttpRequest, item_id: int) -> JsonResponse:
    # Evaluated once per request; the variant then rides on this request's later events.
    layout = posthog.flags().get_flag("checkout-layout")
    posthog.capture("item added", properties={"item_id": item_id})
    return JsonResponse({"item_id": item_id, "checkout_layout": layout})


@csrf_exempt
def place_order(request: HttpRequest) -> JsonResponse:
    order = {"order_id": next(_order_numbers), "item_id": int(request.POST.get("item_id", 42))}
    posthog.capture("order placed", properties=order)
    # Sent by the worker; its event still belongs to this visitor.
    send_order_confirmation.delay(order)
    return JsonResponse(order)


def checkout(request: HttpRequest) -> HttpResponse:
    try:
        raise ConnectionError("payment service unreachable")
    except ConnectionError as cause:
        raise RuntimeError("checkout failed") from cause


def report(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        for number in range(3):
            yield f"row {number}\n"
        posthog.capture("report streamed", properties={"rows": 3})

    return StreamingHttpResponse(rows(), content_type="text/plain")
