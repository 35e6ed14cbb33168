"""The test project's Celery app, its tasks, and the URL conf of a view that enqueues them
(``settings_celery``). Tasks run eagerly, in the request: no broker.

With ``OWN_INTEGRATION=1`` the app has a ``PostHogCelery`` of its own, with its own client
(API key ``phc_own_integration``), which ``POSTHOG["CELERY"]`` must leave in place.
"""

from __future__ import annotations

import os

from celery import Celery
from django.http import HttpRequest, HttpResponse
from django.urls import path

import posthog_integrations as posthog
from posthog_integrations import Client

app = Celery("tests")
app.conf.task_always_eager = True

own_client: Client | None = None
if os.environ.get("OWN_INTEGRATION") == "1":
    from posthog_integrations.celery import PostHogCelery

    own_client = Client(api_key="phc_own_integration",
                        host=os.environ.get("TEST_SINK_URL", "http://127.0.0.1:9"))
    PostHogCelery(app, client=own_client)


@app.task
def confirm_order(order_id: int) -> None:
    posthog.capture("order confirmed", properties={"order_id": order_id})


@app.task
def charge_card(order_id: int) -> None:
    raise RuntimeError(f"card declined for order {order_id}")


def place_order(request: HttpRequest) -> HttpResponse:
    posthog.tag("plan", "pro")
    posthog.tag("cart_note", "leave at the door")
    confirm_order.delay(7)
    charge_card.delay(7)
    return HttpResponse("ordered")


urlpatterns = [path("orders/", place_order)]
