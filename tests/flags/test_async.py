"""``aevaluate_flags`` runs the request off the event loop: other tasks keep running."""

from __future__ import annotations

import asyncio

import posthog_integrations as posthog
from posthog_integrations import Client
from tests.conftest import API_KEY
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import Answer, FlagsServer

SLOW = 1.0


async def _ticks_while(awaitable_factory: object, interval: float = 0.02) -> tuple[object, int]:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(interval)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    try:
        result = await awaitable_factory()  # type: ignore[operator]
    finally:
        stop.set()
        await task
    return result, ticks


def test_a_slow_flags_endpoint_does_not_stall_the_loop(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.script(Answer(200, {"featureFlags": {"f": "v"}}, delay=SLOW))
    client = make_flags_client()
    snapshot, ticks = asyncio.run(_ticks_while(lambda: client.aevaluate_flags("u")))
    assert snapshot.get_flag("f") == "v"  # type: ignore[attr-defined]
    # A blocked loop would tick once; a free one ticks about SLOW / 0.02 = 50 times.
    assert ticks >= 10


def test_the_facade_form_uses_the_context_identity_and_makes_one_request(
    flags_server: FlagsServer,
) -> None:
    flags_server.respond_with({"featureFlags": {"f": True}})
    client = Client(API_KEY, host=flags_server.url)

    async def main() -> object:
        with client.new_context():
            posthog.identify_context("async-user")
            return await posthog.aevaluate_flags()

    try:
        snapshot = asyncio.run(main())
    finally:
        client.shutdown(timeout=2)
    assert snapshot.is_enabled("f")  # type: ignore[attr-defined]
    [request] = flags_server.flags_requests
    assert request.body["distinct_id"] == "async-user"


def test_without_identity_no_request_and_no_thread_is_needed(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    snapshot = asyncio.run(client.aevaluate_flags())
    assert snapshot.keys == ()
    assert flags_server.flags_requests == []
