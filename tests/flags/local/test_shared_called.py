"""``$feature_flag_called`` deduplicated across processes through a real Redis."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Callable

import pytest

from posthog_integrations.feature_flags.local.shared_called import SharedCalledDedup
from posthog_integrations.feature_flags.local.shared_store import connect
from tests.flags.local.conftest import RedisServer


@pytest.fixture
def make_dedup(namespace: str) -> Iterator[Callable[..., SharedCalledDedup]]:
    made: list[SharedCalledDedup] = []

    def factory(url: str, **options: float) -> SharedCalledDedup:
        dedup = SharedCalledDedup(url, namespace=namespace, **options)
        made.append(dedup)
        return dedup

    yield factory
    for dedup in made:
        dedup.close()


def test_one_process_of_many_sends_each_distinct_call(
        redis_server: RedisServer, make_dedup: Callable[..., SharedCalledDedup]) -> None:
    first, second = make_dedup(redis_server.url), make_dedup(redis_server.url)
    groups = {"company": "acme", "team": 7}
    assert first.first_time("user-1", "beta", "test", groups)
    assert not second.first_time("user-1", "beta", "test", {"team": "7", "company": "acme"})
    assert not first.first_time("user-1", "beta", "test", groups)
    assert second.first_time("user-1", "beta", "control", groups)  # another value
    assert second.first_time("user-1", "beta", "test", {"company": "other"})  # other groups
    assert second.first_time("user-2", "beta", "test", groups)  # another person
    assert second.first_time("user-1", "gamma", "test", groups)  # another flag


def test_a_record_expires_after_its_ttl_and_names_no_one_in_the_clear(
        redis_server: RedisServer, namespace: str,
        make_dedup: Callable[..., SharedCalledDedup]) -> None:
    dedup = make_dedup(redis_server.url, ttl=0.3)
    assert dedup.first_time("alice@example.com", "beta", True, {})
    client = connect(redis_server.url)
    keys = [key.decode() for key in client.scan_iter(match=f"{namespace}:called:*")]
    assert len(keys) == 1
    assert "alice" not in keys[0]
    assert 0 < client.pttl(keys[0]) <= 300
    client.close()
    assert not dedup.first_time("alice@example.com", "beta", True, {})
    time.sleep(0.5)
    assert dedup.first_time("alice@example.com", "beta", True, {})


def test_without_redis_every_call_is_first_logged_once_and_redis_is_rested(
        own_redis_server: RedisServer, make_dedup: Callable[..., SharedCalledDedup],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="posthog_integrations")
    dedup = make_dedup(own_redis_server.url, retry_after=0.5)
    assert dedup.first_time("user", "beta", True, {})
    own_redis_server.stop()
    assert all(dedup.first_time("user", "beta", True, {}) for _ in range(5))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert "does not answer" in lines[0]

    own_redis_server.start()  # empty: the record was lost with it
    assert dedup.first_time("user", "beta", True, {})  # still resting: Redis not asked
    time.sleep(0.6)
    assert dedup.first_time("user", "beta", True, {})
    assert not dedup.first_time("user", "beta", True, {})
    assert "answers again" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 2


def test_a_silent_redis_is_asked_once_per_rest(make_dedup: Callable[..., SharedCalledDedup]
                                               ) -> None:
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)
    dedup = make_dedup(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", redis_timeout=0.2,
                       retry_after=60)
    try:
        assert all(dedup.first_time("user", "beta", True, {}) for _ in range(20))
        silent.setblocking(False)
        connections = 0
        try:
            while True:
                silent.accept()[0].close()
                connections += 1
        except BlockingIOError:
            pass
        assert connections == 1
    finally:
        silent.close()
