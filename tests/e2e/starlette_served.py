"""A Starlette app served by a real uvicorn in the end-to-end test.

Configured only by the environment (POSTHOG_API_KEY, POSTHOG_HOST), as a deployed app would be.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import posthog_integrations as posthog
from posthog_integrations.asgi import PostHogMiddleware


async def order(request: Request) -> PlainTextResponse:
    posthog.capture("order placed", properties={"order": request.path_params["order_id"]})
    return PlainTextResponse("ok")


async def broken(request: Request) -> PlainTextResponse:
    raise RuntimeError("checkout failed")


app = Starlette(
    routes=[Route("/orders/{order_id}", order), Route("/broken", broken)],
    middleware=[Middleware(PostHogMiddleware)],
)
