"""The same shop in FastAPI: the middleware is the same one line.

Run it: ``uvicorn fastapi_shop:app``. Without ``POSTHOG_HOST`` it sends to the local capture
endpoint (``posthog-integrations sink``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, StreamingResponse

import posthog_integrations as posthog
from posthog_integrations.asgi import PostHogMiddleware

from shop import client

app = FastAPI()
app.add_middleware(PostHogMiddleware, client=client, capture_pageviews=True)


@app.get("/", response_class=HTMLResponse)
async def home() -> str:
    return "<h1>Shop</h1>"


@app.post("/signup")
async def signup(username: str = Form(), plan: str = Form("free")) -> dict[str, str]:
    user_id = f"user-{username}"
    posthog.identify_context(user_id)  # this request's events now belong to the new user
    posthog.capture("signed up", properties={"plan": plan})
    return {"user_id": user_id}


@app.post("/cart/{item_id}")
async def add_to_cart(item_id: int) -> dict[str, Any]:
    # Evaluated once per request; the variant then rides on this request's later events.
    layout = (await posthog.aflags()).get_flag("checkout-layout")
    posthog.capture("item added", properties={"item_id": item_id})
    return {"item_id": item_id, "checkout_layout": layout}


@app.get("/checkout")
async def checkout() -> str:
    try:
        raise ConnectionError("payment service unreachable")
    except ConnectionError as cause:
        raise RuntimeError("checkout failed") from cause


@app.get("/report")
async def report() -> StreamingResponse:
    async def rows() -> AsyncIterator[str]:
        for number in range(3):
            yield f"row {number}\n"
        posthog.capture("report streamed", properties={"rows": 3})

    return StreamingResponse(rows(), media_type="text/plain")
