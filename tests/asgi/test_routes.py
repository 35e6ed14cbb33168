"""``$route`` in Starlette and FastAPI apps: the route template as the app's OpenAPI shows it.

Convertors (``{item_id:int}``) are left out and mount prefixes are templates too, so every
request to one endpoint carries the same ``$route``, whatever its parameters and however the
app is served (mounted, under a ``root_path``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.asgi import PostHogMiddleware
from posthog_integrations.asgi.routes import route_template, without_convertors
from posthog_integrations.testing import CapturedEvents

UUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


class Boom(Exception):
    pass


@pytest.fixture
def client() -> Iterator[Client]:
    client = Client("phc_routes_test", send=False)
    yield client
    client.shutdown()


async def page(request: Request) -> HTMLResponse:
    posthog.capture("hit")
    if request.query_params.get("fail"):
        raise Boom("endpoint failed")
    return HTMLResponse("<p>page</p>")


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    posthog.capture("hit")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<p>raw</p>"})


def starlette_routes() -> list[Any]:
    return [
        Route("/items/{item_id:int}", page),
        Route("/files/{file_path:path}", page),
        Route("/orders/{order_id:uuid}", page),
        Route("/plain/{name}", page),
        Mount("/api", routes=[Route("/items/{item_id:int}", page)]),
        Mount("/users/{user_id:int}", routes=[Route("/orders/{order_id:uuid}", page)]),
        Mount("/v1", app=Starlette(routes=[Route("/items/{item_id:float}", page)])),
        Mount("/tenants/{tenant}", app=raw_asgi),
    ]


STARLETTE_CASES = [
    ("/items/42", "/items/{item_id}"),
    ("/files/docs/2024/report.pdf", "/files/{file_path}"),
    (f"/orders/{UUID}", "/orders/{order_id}"),
    ("/plain/ada", "/plain/{name}"),
    ("/api/items/7", "/api/items/{item_id}"),
    (f"/users/7/orders/{UUID}", "/users/{user_id}/orders/{order_id}"),
    ("/v1/items/1.5", "/v1/items/{item_id}"),
    ("/tenants/acme/anything/below", "/tenants/{tenant}"),
]


def routes_seen(events: CapturedEvents) -> set[str]:
    """The ``$route`` of the endpoint's event and of the request's page view."""
    assert sorted(events.names()) == ["$pageview", "hit"]
    return {event["properties"]["$route"] for event in events}


@pytest.mark.parametrize(("path", "expected"), STARLETTE_CASES)
def test_starlette_routes_carry_their_template_without_convertors(
        client: Client, posthog_events: CapturedEvents, path: str, expected: str) -> None:
    app = Starlette(routes=starlette_routes())
    app.add_middleware(PostHogMiddleware, client=client, capture_pageviews=True)
    assert TestClient(app).get(path).status_code == 200
    assert routes_seen(posthog_events) == {expected}


@pytest.mark.parametrize(("path", "expected"), STARLETTE_CASES)
def test_a_router_served_under_a_root_path_leaves_the_root_path_out(
        client: Client, posthog_events: CapturedEvents, path: str, expected: str) -> None:
    # A bare Router, wrapped from outside, served as `uvicorn --root-path /shop` serves it:
    # the path keeps the prefix the proxy in front routes by, root_path names it.
    app = PostHogMiddleware(Router(routes=starlette_routes()), client=client,
                            capture_pageviews=True)
    response = TestClient(app, root_path="/shop").get("/shop" + path)
    assert response.status_code == 200
    assert routes_seen(posthog_events) == {expected}
    assert {e["properties"]["$request_path"] for e in posthog_events} == {"/shop" + path}


def test_an_exception_carries_the_route_template(client: Client,
                                                 posthog_events: CapturedEvents) -> None:
    app = PostHogMiddleware(Starlette(routes=starlette_routes()), client=client)
    response = TestClient(app, raise_server_exceptions=False).get(
        f"/users/7/orders/{UUID}?fail=1")
    assert response.status_code == 500
    error = posthog_events.one("$exception")
    assert error["properties"]["$route"] == "/users/{user_id}/orders/{order_id}"


def fastapi_app(client: Client) -> FastAPI:
    app = FastAPI()
    app.add_middleware(PostHogMiddleware, client=client, capture_pageviews=True)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    async def item(item_id: int) -> str:
        posthog.capture("hit")
        return "<p>item</p>"

    @app.get("/files/{file_path:path}", response_class=HTMLResponse)
    async def file(file_path: str) -> str:
        posthog.capture("hit")
        return "<p>file</p>"

    router = APIRouter(prefix="/v2")

    @router.get("/orders/{order_id}", response_class=HTMLResponse)
    async def order(order_id: str) -> str:
        posthog.capture("hit")
        return "<p>order</p>"

    app.include_router(router)
    sub = FastAPI()

    @sub.get("/things/{thing_id}", response_class=HTMLResponse)
    async def thing(thing_id: int) -> str:
        posthog.capture("hit")
        return "<p>thing</p>"

    app.mount("/sub", sub)
    return app


FASTAPI_CASES = [
    ("/items/42", "/items/{item_id}"),
    ("/files/docs/report.pdf", "/files/{file_path}"),
    ("/v2/orders/o-9", "/v2/orders/{order_id}"),
    ("/sub/things/3", "/sub/things/{thing_id}"),
]


@pytest.mark.parametrize(("path", "expected"), FASTAPI_CASES)
@pytest.mark.parametrize("root_path", ["", "/api"])
def test_fastapi_routes_are_the_paths_of_its_openapi_schema(
        client: Client, posthog_events: CapturedEvents, path: str, expected: str,
        root_path: str) -> None:
    app = fastapi_app(client)  # served under the proxy's root_path, as FastAPI recommends
    assert TestClient(app, root_path=root_path).get(root_path + path).status_code == 200
    assert routes_seen(posthog_events) == {expected}
    openapi_paths = set(app.openapi()["paths"])
    assert expected in openapi_paths or expected.startswith("/sub/")


def test_convertors_are_left_out_of_any_template() -> None:
    assert without_convertors("/a/{x:int}/b/{y}/{rest:path}") == "/a/{x}/b/{y}/{rest}"
    assert without_convertors("/plain") == "/plain"


def test_older_starlette_routes_are_found_by_matching_the_routers_routes() -> None:
    # Before Starlette 1.0 the scope names the router but not the matched route.
    router = Router(routes=starlette_routes())
    for path, expected in STARLETTE_CASES:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "",
                 "router": router, "endpoint": page}
        assert route_template(scope, "") == expected, path
