"""The client option ``flag_definitions_cache``: validated when the client is built, and the
poller of a client given it shares its definitions through Redis (one poll per interval)."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from posthog_integrations import Client, ClientOptions, ConfigurationError
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.redis_server import RedisServer

SECRET = "phx_shared_option_secret_0123456789ab"
DEFINITIONS: dict[str, Any] = {
    "flags": [{"id": 1, "key": "beta", "active": True,
               "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}],
    "group_type_mapping": {},
    "cohorts": {},
}


def definitions_polls(sink: LocalSink) -> int:
    return sum(1 for request in sink.requests() if request.path == "/flags/definitions")


def test_the_option_defaults_to_none_and_comes_from_the_environment() -> None:
    assert ClientOptions.resolve({}, environ={}).flag_definitions_cache is None
    pytest.importorskip("redis", reason="the redis package is not installed (the `redis` extra)")
    environ = {"POSTHOG_FLAG_DEFINITIONS_CACHE": "redis://127.0.0.1:6379/2"}
    assert ClientOptions.resolve({}, environ=environ).flag_definitions_cache == \
        "redis://127.0.0.1:6379/2"
    assert ClientOptions.resolve({"flag_definitions_cache": "rediss://cache:6380/0"},
                                 environ=environ).flag_definitions_cache == "rediss://cache:6380/0"


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", 6379])
def test_a_url_that_is_no_redis_url_is_a_configuration_error(url: Any) -> None:
    with pytest.raises(ConfigurationError, match="flag_definitions_cache"):
        Client(API_KEY, secret_key=SECRET, flag_definitions_cache=url, send=False)


def test_the_environment_variable_is_named_when_its_url_is_bad() -> None:
    with pytest.raises(ConfigurationError, match="POSTHOG_FLAG_DEFINITIONS_CACHE"):
        ClientOptions.resolve({}, environ={"POSTHOG_FLAG_DEFINITIONS_CACHE": "memcache://x"})


def test_without_the_redis_package_the_error_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # makes `import redis` fail
    with pytest.raises(ConfigurationError, match=r"posthog-integrations\[redis\]"):
        Client(API_KEY, secret_key=SECRET, flag_definitions_cache="redis://127.0.0.1:1/0",
               send=False)


def test_two_clients_with_the_cache_make_one_definitions_request_between_them(
        redis_server: RedisServer) -> None:
    with LocalSink(definitions=DEFINITIONS) as sink:
        url = f"redis://127.0.0.1:{redis_server.port}/3"
        clients = [Client(API_KEY, host=sink.url, secret_key=SECRET, poll_interval=60,
                          flag_definitions_cache=url) for _ in range(2)]
        try:
            assert all(client.load_flags(timeout=10) for client in clients)
            assert definitions_polls(sink) == 1
        finally:
            for client in clients:
                client.shutdown(timeout=2)
        assert definitions_polls(sink) == 1


def test_over_several_intervals_the_two_clients_poll_once_per_interval_between_them(
        redis_server: RedisServer) -> None:
    interval = 0.4
    with LocalSink(definitions=DEFINITIONS) as sink:
        url = f"redis://127.0.0.1:{redis_server.port}/4"
        clients = [Client(API_KEY, host=sink.url, secret_key=SECRET, poll_interval=interval,
                          flag_definitions_cache=url) for _ in range(2)]
        try:
            started = time.monotonic()
            assert all(client.load_flags(timeout=10) for client in clients)
            time.sleep(8 * interval)
            polls, elapsed = definitions_polls(sink), time.monotonic() - started
        finally:
            for client in clients:
                client.shutdown(timeout=2)
    # The lock lives one interval, so at most one poll starts per interval (plus the first).
    assert 1 <= polls <= elapsed / interval + 2
