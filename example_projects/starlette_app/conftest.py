from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp

import fastapi_shop
import shop


@pytest.fixture(params=["starlette", "fastapi"])
def app(request: pytest.FixtureRequest) -> ASGIApp:
    """Both shops: the Starlette one and its FastAPI twin."""
    return shop.app if request.param == "starlette" else fastapi_shop.app


@pytest.fixture
def client(app: ASGIApp) -> Iterator[TestClient]:
    # raise_server_exceptions=False: see the 500 a browser would get.
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
