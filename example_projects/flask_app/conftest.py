from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shop import create_app


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app(TESTING=True)
    yield app
    app.extensions["posthog"].client.shutdown()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
