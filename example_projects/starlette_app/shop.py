"""A small Starlette shop sending product analytics and errors to PostHog.

Run it: ``uvicorn shop:app``. Without ``POSTHOG_HOST`` it sends to the local capture endpoint
(``posthog-integrations sink``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

import posthog_integrations as posthog
from posthog_integrations.asgi import PostHogMiddleware

LOCAL_ENDPOINT = "http://127.0.0.1:8010"
_host = os.environ.get("POSTHOG_HOST") or LOCAL_ENDPOINT
# The local endpoint takes any key; anywhere else the key must come from the environment.
client = posthog.Client(
    os.environ.get("POSTHOG_API_KEY") or ("phc_local" if _host == LOCAL_ENDPOINT else None),
    host=_host,
)


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse("<h1>Shop</h1>")


async def signup(request: Request) -> JSONResponse:
    form = await request.form()
    user_id = f"user-{form['username']}"
    posthog.identify_context(user_id)  # this request's events now belong to the new user
    posthog.capture("signed up", properties={"plan": form.get("plan", "free")})
    return JSONResponse({"user_id": user_id})


async def add_to_cart(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    # Evaluated once per request; the variant then rides on this request's later events.
    layout = (await posthog.aflags()).get_flag("checkout-layout")
    posthog.capture("item added", properties={"item_id": item_id})
    return JSONResponse({"item_id": item_id, "checkout_layout": layout})


async def checkout(request: Request) -> HTMLResponse:
    try:
        raise ConnectionError("payment service unreachable")
    except ConnectionError as cause:
        raise RuntimeError("checkout failed") from cause


async def report(request: Request) -> StreamingResponse:
    async def rows() -> AsyncIterator[str]:
        for number in range(3):
            yield f"row {number}\n"
        posthog.capture("report streamed", properties={"rows": 3})

    return StreamingResponse(rows(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/signup", signup, methods=["POST"]),
        Route("/cart/{item_id:int}", add_to_cart, methods=["POST"]),
        Route("/checkout", checkout),
        Route("/report", report),
    ],
    middleware=[Middleware(PostHogMiddleware, client=client, capture_pageviews=True)],
)
