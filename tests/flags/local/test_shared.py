"""The Redis-shared definitions source, in one process, against a real Redis and real HTTP."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from posthog_integrations.core.transport import Transport
from posthog_integrations.feature_flags.local.fetch import fetch_definitions
from posthog_integrations.feature_flags.local.shared import (
    SharedSource,
    check_cache_url,
    make_shared_source,
    namespace_for,
)
from posthog_integrations.feature_flags.local.shared_store import SharedStore, connect
from posthog_integrations.feature_flags.local.source import Fetched
from posthog_integrations.sink import LocalSink
from tests import redis_server as shared_redis
from tests.conftest import API_KEY
from tests.flags.local.definitions_server import DefinitionsServer, definitions, http_fetch
from tests.forking import child_exit_code
from tests.redis_server import RedisServer

INTERVAL = 0.3
Fetch = Callable[[Optional[str]], Fetched]


@pytest.fixture
def server() -> Iterator[DefinitionsServer]:
    with DefinitionsServer() as running:
        yield running


@pytest.fixture
def make_source(namespace: str) -> Iterator[Callable[..., SharedSource]]:
    sources: list[SharedSource] = []

    def factory(url: str, fetch: Fetch, **options: Any) -> SharedSource:
        # A long interval unless a test says otherwise: no lock lapses behind a test's back.
        settings: dict[str, Any] = {"namespace": namespace, "poll_interval": 30.0, **options}
        source = SharedSource(url, fetch, **settings)
        sources.append(source)
        return source

    yield factory
    for source in sources:
        source.close()


def flag_keys(fetched: Fetched) -> list[str]:
    assert fetched.outcome == "updated", fetched
    assert fetched.data is not None
    return [flag["key"] for flag in fetched.data["flags"]]


def workers(server: DefinitionsServer) -> list[str]:
    return [arrival.worker for arrival in server.arrivals]


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.getMessage().startswith("flag definitions cache")]


def test_one_process_polls_and_the_others_read_the_shared_copy(
        redis_server: RedisServer, server: DefinitionsServer,
        make_source: Callable[..., SharedSource]) -> None:
    first = make_source(redis_server.url, http_fetch(server.url, "first"))
    second = make_source(redis_server.url, http_fetch(server.url, "second"))

    assert flag_keys(first.refresh()) == ["flag-v1"]
    assert flag_keys(second.refresh()) == ["flag-v1"]
    assert workers(server) == ["first"]  # the second read Redis only

    assert first.refresh().outcome == "not_modified"
    assert second.refresh().outcome == "not_modified"
    assert workers(server) == ["first", "first"]
    assert server.arrivals[1].etag_sent is not None
    assert server.arrivals[1].status == 304  # polled with the shared ETag

    server.set_definitions(definitions("flag-v2"))
    assert flag_keys(first.refresh()) == ["flag-v2"]
    assert flag_keys(second.refresh()) == ["flag-v2"]
    assert second.refresh().outcome == "not_modified"
    assert workers(server) == ["first"] * 3


@pytest.mark.parametrize(("status", "outcome"), [(401, "unauthorized"), (402, "quota_limited")])
def test_a_401_or_402_is_shared_so_every_process_clears(
        redis_server: RedisServer, server: DefinitionsServer,
        make_source: Callable[..., SharedSource], status: int, outcome: str) -> None:
    holder = make_source(redis_server.url, http_fetch(server.url, "holder"))
    reader = make_source(redis_server.url, http_fetch(server.url, "reader"))
    assert flag_keys(holder.refresh()) == flag_keys(reader.refresh()) == ["flag-v1"]

    server.status = status
    assert holder.refresh().outcome == outcome
    assert reader.refresh().outcome == outcome
    assert holder.refresh().outcome == outcome
    assert reader.refresh().outcome == outcome  # still in force, as a poll would say
    assert f"HTTP {status}" in reader.refresh().detail

    server.status = 200
    assert flag_keys(holder.refresh()) == ["flag-v1"]
    assert server.arrivals[-1].etag_sent is None  # the verdict dropped the ETag
    assert flag_keys(reader.refresh()) == ["flag-v1"]
    assert set(workers(server)) == {"holder"}


def test_when_the_lock_lapses_the_next_process_takes_over(
        redis_server: RedisServer, server: DefinitionsServer,
        make_source: Callable[..., SharedSource], namespace: str) -> None:
    first = make_source(redis_server.url, http_fetch(server.url, "first"),
                        poll_interval=INTERVAL)
    second = make_source(redis_server.url, http_fetch(server.url, "second"),
                         poll_interval=INTERVAL)
    first.refresh()
    client = connect(redis_server.url)
    ttl_ms = client.pttl(f"{namespace}:lock")
    assert 0 < ttl_ms <= INTERVAL * 1000  # expires within one interval of the last poll

    time.sleep(INTERVAL * 1.5)  # the first stops polling, as if it died
    assert flag_keys(second.refresh()) == ["flag-v1"]  # read from Redis, then polled
    assert workers(server) == ["first", "second"]
    assert server.arrivals[-1].status == 304  # with the shared ETag
    client.close()


def test_a_lapsed_holder_can_neither_write_nor_release(
        redis_server: RedisServer, namespace: str) -> None:
    client = connect(redis_server.url)
    store = SharedStore(client, namespace, state_ttl=60)
    assert store.acquire("old", 0.05)
    stamp = store.write("old", "ok", '"a"', b'{"flags":[]}')
    assert stamp is not None
    time.sleep(0.2)
    assert store.acquire("new", 10)
    assert not store.acquire("old", 10)
    assert store.write("old", "ok", '"stale"', b'{"flags":[{"key":"stale"}]}') is None
    store.release("old")
    assert client.get(store.lock_key) == b"new"
    state = store.read(with_data=True)
    assert state is not None
    assert (state.stamp, state.etag, state.data) == (stamp, '"a"', b'{"flags":[]}')
    store.release("new")
    assert client.get(store.lock_key) is None
    client.close()


def test_definitions_over_the_bound_are_not_stored_and_each_process_polls(
        redis_server: RedisServer, server: DefinitionsServer, namespace: str,
        make_source: Callable[..., SharedSource], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="posthog_integrations")
    holder = make_source(redis_server.url, http_fetch(server.url, "holder"), max_bytes=64)
    reader = make_source(redis_server.url, http_fetch(server.url, "reader"), max_bytes=64)
    assert flag_keys(holder.refresh()) == ["flag-v1"]
    assert flag_keys(reader.refresh()) == ["flag-v1"]
    assert workers(server) == ["holder", "reader"]
    client = connect(redis_server.url)
    assert client.hget(f"{namespace}:state", "data") == b""
    assert client.hget(f"{namespace}:state", "outcome") == b"too_large"
    assert holder.refresh().outcome == reader.refresh().outcome == "not_modified"
    assert workers(server) == ["holder", "reader", "holder", "reader"]
    size = len(json.dumps(definitions("flag-v1"), separators=(",", ":")))
    assert [record.getMessage() for record in caplog.records
            if "over the shared copy's bound" in record.getMessage()] == [
        f"flag definitions cache: the definitions are {size} bytes, over the shared copy's "
        "bound of 64; each process polls PostHog itself"]
    client.close()


def test_keys_are_a_hash_of_the_project_and_secrets_stay_out(
        redis_server: RedisServer, server: DefinitionsServer) -> None:
    closed: list[bool] = []
    source = make_shared_source(redis_server.url, http_fetch(server.url), project_key=API_KEY,
                                poll_interval=INTERVAL, host=server.url,
                                on_close=lambda: closed.append(True))
    try:
        assert flag_keys(source.refresh()) == ["flag-v1"]
    finally:
        source.close()
    source.close()
    assert closed == [True]  # the fetch's transport is closed once
    prefix = namespace_for(API_KEY, server.url)
    client = connect(redis_server.url)
    keys = [key.decode() for key in client.scan_iter(match=f"{prefix}:*")]
    assert keys == [f"{prefix}:state"]  # the lock was released on close
    assert API_KEY not in prefix
    assert API_KEY not in repr(source)
    client.close()


def test_a_password_in_the_url_never_reaches_a_log_line_or_repr(
        server: DefinitionsServer, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis", reason="the redis package is not installed (the `redis` extra)")
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    port = closed_port.getsockname()[1]
    source = make_shared_source(f"redis://:hunter2@127.0.0.1:{port}/3", http_fetch(server.url),
                                project_key=API_KEY, poll_interval=INTERVAL)
    try:
        assert flag_keys(source.refresh()) == ["flag-v1"]
        assert "hunter2" not in repr(source)
        assert cache_warnings(caplog)
        assert all("hunter2" not in line for line in cache_warnings(caplog))
        assert f"127.0.0.1:{port}/3" in cache_warnings(caplog)[0]
    finally:
        source.close()
        closed_port.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "", None])
def test_a_bad_cache_url_is_a_configuration_error(url: Any) -> None:
    with pytest.raises(ValueError, match="must be a redis://, rediss:// or unix:// URL"):
        check_cache_url(url)


def test_a_cache_url_without_the_redis_package_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(ValueError, match=r"posthog-integrations\[redis\]"):
        check_cache_url("redis://127.0.0.1:6379/0")


def test_redis_down_means_polling_directly_logged_once_then_back_to_shared(
        own_redis_server: RedisServer, server: DefinitionsServer, namespace: str,
        make_source: Callable[..., SharedSource], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="posthog_integrations")
    source = make_source(own_redis_server.url, http_fetch(server.url, "alone"))
    assert flag_keys(source.refresh()) == ["flag-v1"]
    own_redis_server.stop()

    outcomes = [source.refresh().outcome for _ in range(3)]
    assert outcomes == ["not_modified"] * 3  # polled PostHog itself, with its own ETag
    assert [arrival.status for arrival in server.arrivals] == [200, 304, 304, 304]
    assert len(cache_warnings(caplog)) == 1
    assert "does not answer" in cache_warnings(caplog)[0]

    own_redis_server.start()  # an empty Redis: this process polls and fills it again
    assert source.refresh().outcome == "updated"
    assert server.arrivals[-1].etag_sent is None
    assert source.refresh().outcome == "not_modified"
    assert len(cache_warnings(caplog)) == 2
    assert "answers again" in cache_warnings(caplog)[1]
    client = connect(own_redis_server.url)
    assert client.hget(f"{namespace}:state", "outcome") == b"ok"
    client.close()


def test_a_redis_that_never_answers_costs_one_short_timeout_and_no_retry(
        server: DefinitionsServer, make_source: Callable[..., SharedSource]) -> None:
    pytest.importorskip("redis", reason="the redis package is not installed (the `redis` extra)")
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)  # connects, never replies
    port = silent.getsockname()[1]
    source = make_source(f"redis://127.0.0.1:{port}/0", http_fetch(server.url), redis_timeout=0.2)
    try:
        started = time.monotonic()
        assert flag_keys(source.refresh()) == ["flag-v1"]
        assert time.monotonic() - started < 5  # one 0.2 s timeout; generous for a loaded box
        silent.setblocking(False)
        attempts = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                connection, _ = silent.accept()
                connection.close()
                attempts += 1
        assert attempts == 1  # no retry: the poll went straight to PostHog
    finally:
        silent.close()


def test_a_process_with_nothing_loaded_waits_for_the_holders_first_poll(
        redis_server: RedisServer, server: DefinitionsServer,
        make_source: Callable[..., SharedSource]) -> None:
    slow_started = threading.Event()
    plain = http_fetch(server.url, "holder")

    def slow_fetch(etag: str | None) -> Fetched:
        slow_started.set()
        time.sleep(0.3)
        return plain(etag)

    holder = make_source(redis_server.url, slow_fetch)
    reader = make_source(redis_server.url, http_fetch(server.url, "reader"), first_load_wait=20)
    results: list[Fetched] = []
    thread = threading.Thread(target=lambda: results.append(holder.refresh()))
    thread.start()
    assert slow_started.wait(10)
    assert flag_keys(reader.refresh()) == ["flag-v1"]
    thread.join()
    assert flag_keys(results[0]) == ["flag-v1"]
    assert workers(server) == ["holder"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_has_its_own_token_and_reads_the_shared_copy(
        redis_server: RedisServer, server: DefinitionsServer, namespace: str,
        make_source: Callable[..., SharedSource]) -> None:
    def fetch(etag: str | None) -> Fetched:  # names the process that polls
        return http_fetch(server.url, str(os.getpid()))(etag)

    # A long interval: the parent's lock cannot lapse while the child runs, however slowly.
    source = make_source(redis_server.url, fetch, poll_interval=60.0)
    assert flag_keys(source.refresh()) == ["flag-v1"]  # the parent holds the lock
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only
        try:
            fetched = source.refresh()
            source.close()
            keys = [flag["key"] for flag in (fetched.data or {}).get("flags", [])]
            os._exit(0 if fetched.outcome == "updated" and keys == ["flag-v1"] else 1)
        finally:
            os._exit(2)
    assert child_exit_code(pid, timeout=20, hung="the forked child hung") == 0
    assert workers(server) == [str(os.getpid())]  # the child read Redis; it did not poll
    client = connect(redis_server.url)
    assert client.get(f"{namespace}:lock") is not None  # its close() left the parent's lock
    assert source.refresh().outcome == "not_modified"  # the parent's connection still works
    client.close()


def test_a_redis_restarted_empty_between_two_polls_still_brings_the_change(
        own_redis_server: RedisServer, server: DefinitionsServer,
        make_source: Callable[..., SharedSource]) -> None:
    holder = make_source(own_redis_server.url, http_fetch(server.url, "holder"))
    reader = make_source(own_redis_server.url, http_fetch(server.url, "reader"))
    assert flag_keys(holder.refresh()) == flag_keys(reader.refresh()) == ["flag-v1"]
    own_redis_server.stop()
    own_redis_server.start()  # empty again: the next state starts over at version 1
    server.set_definitions(definitions("flag-v2"))
    assert flag_keys(holder.refresh()) == ["flag-v2"]
    assert flag_keys(reader.refresh()) == ["flag-v2"]
    assert workers(server) == ["holder", "holder"]


def real_fetch(transport: Transport, secret: str) -> Fetch:
    def fetch(etag: str | None) -> Fetched:
        return fetch_definitions(transport, project_key=API_KEY, secret_key=secret, etag=etag)

    return fetch


def test_through_the_real_request_and_the_local_sink_neither_key_reaches_redis(
        redis_server: RedisServer) -> None:
    secret = "phx_shared_secret_0123456789abcdef"
    prefix = f"test-shared:{uuid.uuid4().hex}"
    with LocalSink(definitions=definitions("beta")) as sink:
        transports = [Transport(sink.url, API_KEY, timeout=5, gzip=False) for _ in range(2)]
        sources = [make_shared_source(
            redis_server.url,
            real_fetch(transport, secret),
            project_key=API_KEY, poll_interval=30.0, host=sink.url,
            key_prefix=prefix) for transport in transports]
        try:
            assert [flag_keys(source.refresh()) for source in sources] == [["beta"], ["beta"]]
            assert [source.refresh().outcome for source in sources] == ["not_modified"] * 2
            assert sink.stats()["definitions_requests"] == 2  # the holder's 200, then its 304
            client = connect(redis_server.url)
            stored = b"".join(key + (client.get(key) if client.type(key) == b"string"
                                     else b"".join(b"".join(item)
                                                   for item in client.hgetall(key).items()))
                              for key in client.scan_iter(match=f"{prefix}:*"))
            assert b"beta" in stored
            assert secret.encode() not in stored
            assert API_KEY.encode() not in stored
            client.close()
        finally:
            for source, transport in zip(sources, transports):
                source.close()
                transport.close()


def test_a_missing_redis_server_fails_where_redis_is_required(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(shared_redis, "REQUIRE_REDIS", True)
    with pytest.raises(pytest.fail.Exception, match="POSTHOG_REQUIRE_REDIS=1"):
        shared_redis.redis_server_executable()
    monkeypatch.setattr(shared_redis, "REQUIRE_REDIS", False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        shared_redis.redis_server_executable()


def test_close_does_not_wait_for_a_poll_in_flight(
        redis_server: RedisServer, server: DefinitionsServer, namespace: str,
        caplog: pytest.LogCaptureFixture) -> None:
    entered, release = threading.Event(), threading.Event()
    plain = http_fetch(server.url)

    def stuck_fetch(etag: str | None) -> Fetched:
        entered.set()
        release.wait(30)
        return plain(etag)

    source = SharedSource(redis_server.url, stuck_fetch, namespace=namespace,
                          poll_interval=30.0)
    poll = threading.Thread(target=source.refresh)
    poll.start()
    try:
        assert entered.wait(10)
        closing = threading.Thread(target=source.close)
        closing.start()
        closing.join(10)
        assert not closing.is_alive()  # returned while the poll is still blocked
        client = connect(redis_server.url)
        assert client.get(f"{namespace}:lock") is None  # and gave the lock up
        client.close()
    finally:
        release.set()
        poll.join(10)
    assert not cache_warnings(caplog)  # a poll cut short by close() is no Redis outage
