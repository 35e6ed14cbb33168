"""``flags()`` / ``aflags()``: one snapshot per context and identity, whose read flags ride on
every later event of the context, against a real loopback PostHog."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client, FlagSnapshot
from posthog_integrations.feature_flags import per_context
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import Answer, FlagsServer

FLAGS = {"featureFlags": {"on": True, "variant": "b", "off": False, "unread": True}}


class Boom(Exception):
    pass


def _sent(client: Client, server: FlagsServer, name: str) -> list[dict[str, Any]]:
    assert client.flush(timeout=5)
    return server.events_named(name)


def test_one_request_for_many_reads_from_threads_of_one_context(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(Answer(200, FLAGS, delay=0.3))  # all threads ask while it is in flight
    client = make_flags_client()
    start = threading.Barrier(8)

    def read() -> object:
        start.wait(5)
        return client.flags().get_flag("variant")

    with client.new_context():
        client.identify_context("user-1")
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(contextvars.copy_context().run, read) for _ in range(8)]
            values = [future.result(10) for future in futures]
        assert client.flags().get_flag("variant") == "b"
    assert values == ["b"] * 8
    assert len(flags_server.flags_requests) == 1


def test_one_request_for_many_tasks_of_one_context(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(Answer(200, FLAGS, delay=0.3))
    client = make_flags_client()

    async def main() -> list[bool]:
        with client.new_context():
            client.identify_context("user-1")
            reads = [asyncio.ensure_future(client.aflags()) for _ in range(8)]
            snapshots = await asyncio.gather(*reads)
            again = await client.aflags()
            assert all(snapshot is again for snapshot in snapshots)
            return [snapshot.is_enabled("on") for snapshot in snapshots]

    assert asyncio.run(main()) == [True] * 8
    assert len(flags_server.flags_requests) == 1


def test_child_contexts_share_the_snapshot_and_a_fresh_one_does_not(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()

    @posthog.scoped()
    def helper() -> FlagSnapshot:
        return posthog.flags()

    with client.new_context():
        client.identify_context("user-1")
        with posthog.new_context():
            first = posthog.flags()  # read in a child first: the parent gets it too
        with posthog.new_context():
            posthog.tag("step", 2)
            assert posthog.flags() is first
        assert helper() is first
        assert client.flags() is first
        assert len(flags_server.flags_requests) == 1
        with posthog.new_context(fresh=True):
            posthog.identify_context("user-1")
            fresh = posthog.flags()
        assert fresh is not first
    assert len(flags_server.flags_requests) == 2


def test_identify_context_to_another_id_evaluates_for_it(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    with client.new_context():
        client.identify_context("user-1")
        first = client.flags()
        client.identify_context("user-2")
        second = client.flags()
        client.identify_context("user-1")
        assert client.flags() is first
    assert second is not first
    assert second.distinct_id == "user-2"
    assert [r.body["distinct_id"] for r in flags_server.flags_requests] == ["user-1", "user-2"]


def test_flags_read_ride_on_later_events_and_unread_ones_do_not(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    with client.new_context():
        client.identify_context("user-1")
        client.capture("before any read")
        snapshot = client.flags()
        client.capture("before a read, after flags()")
        assert snapshot.is_enabled("on")
        with client.new_context():
            assert client.flags().get_flag("variant") == "b"
        assert not snapshot.is_enabled("off")
        assert snapshot.get_flag_payload("unread") is None  # payload reads are silent
        client.capture("after the reads", properties={"$feature/on": "caller wins"})
        client.capture("someone else's", distinct_id="user-9")
    client.capture("outside the context", distinct_id="user-1")
    _sent(client, flags_server, "after the reads")
    events = {event["event"]: event["properties"] for event in flags_server.events}
    for name in ("before any read", "before a read, after flags()", "someone else's",
                 "outside the context"):
        assert not any(key.startswith("$feature") for key in events[name]), name
        assert "$active_feature_flags" not in events[name]
    after = events["after the reads"]
    assert after["$feature/on"] == "caller wins"
    assert after["$feature/variant"] == "b"
    assert after["$feature/off"] is False
    assert "$feature/unread" not in after
    assert after["$active_feature_flags"] == ["on", "variant"]


def test_an_exception_escaping_the_context_carries_the_flags_read(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    with pytest.raises(Boom), client.new_context():
        client.identify_context("user-1")
        assert client.flags().get_flag("variant") == "b"
        raise Boom("checkout failed")
    [exception] = _sent(client, flags_server, "$exception")
    assert exception["properties"]["$feature/variant"] == "b"
    assert exception["properties"]["$active_feature_flags"] == ["variant"]
    assert "$feature/on" not in exception["properties"]


def test_outside_a_context_an_empty_snapshot_and_no_request(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    snapshot = client.flags()
    assert snapshot.keys == ()
    assert not snapshot.is_enabled("on")
    assert asyncio.run(client.aflags()).keys == ()
    with client.new_context():  # a context without a distinct id: nothing to evaluate for
        assert client.flags().keys == ()
    assert flags_server.flags_requests == []


def test_aflags_does_not_block_the_event_loop(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(Answer(200, FLAGS, delay=1.0))
    client = make_flags_client()
    ticks = 0

    async def main() -> object:
        nonlocal ticks
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.02)

        task = asyncio.ensure_future(ticker())
        with client.new_context():
            client.identify_context("user-1")
            snapshot = await posthog.aflags()
        done.set()
        await task
        return snapshot.get_flag("variant")

    assert asyncio.run(main()) == "b"
    assert ticks >= 10  # a blocked loop ticks once; a free one about 50 times
    assert len(flags_server.flags_requests) == 1


def test_sync_flags_in_async_code_warns_once_and_still_works(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(per_context, "_async_warned", False)
    flags_server.respond_with(FLAGS)
    client = make_flags_client()

    async def main() -> list[object]:
        values = []
        for user in ("user-1", "user-2"):
            with client.new_context():
                client.identify_context(user)
                values.append(client.flags().get_flag("variant"))
                values.append(client.flags().get_flag("variant"))  # cached: no warning needed
        return values

    with caplog.at_level(logging.WARNING, logger="posthog_integrations"):
        with client.new_context():  # sync code: no warning
            client.identify_context("user-0")
            client.flags()
        assert asyncio.run(main()) == ["b"] * 4
    warnings = [r.getMessage() for r in caplog.records if "aflags()" in r.getMessage()]
    assert len(warnings) == 1
    assert len(flags_server.flags_requests) == 3
