"""A Starlette app for ``uvicorn --workers N``, configured by the environment.

``GET /work/{n}`` captures one "request served" event with the request number and the worker's
pid. The client holds everything until the server stops (batches of 5,000, a 60 s interval):
what arrives was delivered by each worker's flush at lifespan shutdown.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware


async def work(request: Request) -> PlainTextResponse:
    number = int(request.path_params["number"])
    posthog.capture("request served", properties={"request_number": number, "pid": os.getpid()})
    return PlainTextResponse(str(os.getpid()))


client = Client(flush_at=5000, flush_interval=60.0)
app = Starlette(
    routes=[Route("/work/{number:int}", work)],
    middleware=[Middleware(PostHogMiddleware, client=client)],
)
