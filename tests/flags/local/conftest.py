"""A real ``redis-server`` for the shared definitions cache (see tests/redis_server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer, redis_server_executable


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the session; tests keep apart through their own ``namespace``."""
    with RedisServer(redis_server_executable()) as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that stop it."""
    with RedisServer(redis_server_executable()) as server:
        yield server


@pytest.fixture
def namespace() -> str:
    return f"test-shared:{uuid.uuid4().hex}"
