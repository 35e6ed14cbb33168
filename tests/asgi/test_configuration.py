"""A misspelt or bad PostHogMiddleware option: an error naming it and the closest known one,
and, since Starlette and FastAPI build middleware lazily, one clear log line as well."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from posthog_integrations import ConfigurationError
from posthog_integrations.asgi import PostHogMiddleware


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"captur_pageviews": True}, r"^unknown PostHogMiddleware option 'captur_pageviews'; "
                                     r"did you mean 'capture_pageviews'\?$"),
        ({"flush_timout": 2.0}, r"^unknown PostHogMiddleware option 'flush_timout'; "
                                r"did you mean 'flush_timeout'\?$"),
        ({"Exclude_Paths": ["/health"]}, r"did you mean 'exclude_paths'\?$"),
        ({"clients": None}, r"did you mean 'client'\?$"),
    ],
)
def test_an_unknown_option_names_the_closest_known_one(options: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PostHogMiddleware(ok, **options)


def misspelt_app(framework: str, option: str) -> Any:
    if framework == "fastapi":
        fast = FastAPI()
        fast.get("/")(lambda: "ok")
        fast.add_middleware(PostHogMiddleware, **{option: True})  # type: ignore[arg-type]
        return fast
    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(PostHogMiddleware, **{option: True})  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_add_middleware_with_a_misspelt_option_logs_it_once(
        framework: str, caplog: pytest.LogCaptureFixture) -> None:
    option = f"captur_pageviews_{uuid.uuid4().hex[:6]}"  # a message no other test logged
    app = misspelt_app(framework, option)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: requests alone
    statuses = [client.get("/").status_code for _ in range(3)]
    assert statuses == [500, 500, 500]  # Starlette tries to build its middleware every time
    errors = [r for r in caplog.records
              if r.name == "posthog_integrations" and r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert message.startswith(
        f"PostHogMiddleware cannot be built: unknown PostHogMiddleware option '{option}'; "
        f"did you mean 'capture_pageviews'?")
    assert "every request fails until it is fixed" in message


def test_a_bad_value_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    value = f"yes-{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="capture_pageviews: expected True or False"):
            PostHogMiddleware(ok, capture_pageviews=value)  # type: ignore[arg-type]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "PostHogMiddleware cannot be built: capture_pageviews: expected True or False" \
        in errors[0]
