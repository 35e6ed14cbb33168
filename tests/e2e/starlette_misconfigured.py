"""A Starlette app whose PostHogMiddleware option is misspelt, served by uvicorn in a test.

Starlette builds its middleware on the first lifespan event, then again on every request.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from posthog_integrations.asgi import PostHogMiddleware


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", home)])
app.add_middleware(PostHogMiddleware, captur_pageviews=True)  # type: ignore[call-arg]
