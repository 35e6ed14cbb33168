"""The definitions poller of a client, against the local sink over loopback: its lazy thread,
the interval, ETag/304, 401/402, failures, redirects, shutdown, ``load_flags``/``aload_flags``.

Timing: the machine may be slow, so bounds are generous maxima, or spacings the code itself
guarantees (a poll never follows the previous one sooner than the interval).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.feature_flags.local.definitions import NO_DEFINITIONS
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY
from tests.loopback import LoopbackServer, answer_ok, redirect_to

SECRET = "phx_poller_secret_0123456789abcdefgh"
DEFINITIONS: dict[str, Any] = {
    "flags": [{"id": 1, "key": "beta", "active": True,
               "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}],
    "group_type_mapping": {"0": "company"},
    "cohorts": {},
}
THREAD_NAME = "posthog-integrations-flag-definitions"
LocalClientFactory = Callable[..., Client]


@pytest.fixture
def definitions_sink() -> Iterator[LocalSink]:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


@pytest.fixture
def make_local_client(definitions_sink: LocalSink) -> Iterator[LocalClientFactory]:
    clients: list[Client] = []

    def factory(**options: Any) -> Client:
        settings = {"api_key": API_KEY, "host": definitions_sink.url, "secret_key": SECRET,
                    "poll_interval": 60, **options}
        client = Client(**settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.shutdown(timeout=2)


def polls(sink: LocalSink) -> list[Any]:
    return [r for r in sink.requests() if r.path == "/flags/definitions"]


def poller_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.01)


def library_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name.startswith("posthog_integrations") and record.levelno == level]


# -- loading -------------------------------------------------------------------------------------


def test_building_a_client_polls_nothing_and_starts_no_thread(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    before = len(poller_threads())
    client = make_local_client()
    assert len(poller_threads()) == before
    assert polls(definitions_sink) == []
    assert client.load_flags() is True
    assert len(poller_threads()) == before + 1


def test_load_flags_loads_the_definitions_now(make_local_client: LocalClientFactory) -> None:
    client = make_local_client()
    assert client.load_flags() is True
    definitions = client._flag_definitions()
    assert definitions is not None
    assert list(definitions.flags) == ["beta"]
    assert definitions.group_type_mapping == {"0": "company"}


def test_the_first_read_starts_the_poller_without_waiting_for_it(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, delay=30))
    started = time.monotonic()
    client = make_local_client(timeout=60)
    first = client._flag_definitions()
    elapsed = time.monotonic() - started
    assert first is None  # nothing loaded yet, and nothing waited for
    assert elapsed < 10, f"the first read took {elapsed:.1f}s: it waited for the 30 s answer"
    wait_for(lambda: len(polls(definitions_sink)) == 1)
    assert client._flag_definitions() is None  # the answer is still on its way
    definitions_sink.stop()  # releases the delayed answer


def test_a_known_etag_is_sent_and_304_keeps_the_definitions(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    client = make_local_client()
    assert client.load_flags() is True
    loaded = client._flag_definitions()
    assert client.load_flags() is True
    assert client._flag_definitions() is loaded
    first, second = polls(definitions_sink)
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"]
    assert second.status == 304


def test_the_poller_polls_at_the_interval(definitions_sink: LocalSink,
                                          make_local_client: LocalClientFactory) -> None:
    client = make_local_client(poll_interval=0.2)
    assert client.load_flags() is True
    time.sleep(2.0)
    received = [r.received_at for r in polls(definitions_sink)]
    # At most one poll per interval (plus the first), however slow the machine; a few at least.
    assert 3 <= len(received) <= 2.0 / 0.2 + 2, received
    gaps = [later - earlier for earlier, later in zip(received, received[1:])]
    assert min(gaps) >= 0.2 * 0.9, gaps


# -- what each answer does -------------------------------------------------------------------


@pytest.mark.parametrize(("status", "level", "words"), [
    (401, logging.ERROR, "rejected the secret key"),
    (402, logging.WARNING, "quota"),
])
def test_401_and_402_clear_the_definitions_with_one_log_line(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory,
    caplog: pytest.LogCaptureFixture, status: int, level: int, words: str,
) -> None:
    client = make_local_client()
    assert client.load_flags() is True
    definitions_sink.script_definitions(status, status)
    assert client.load_flags() is False
    assert client._flag_definitions() is NO_DEFINITIONS
    assert client.load_flags() is False
    [line] = [line for line in library_lines(caplog, level) if str(status) in line]
    assert words in line
    assert SECRET not in caplog.text
    # Back to normal: the next poll asks without the dropped ETag and loads again.
    assert client.load_flags() is True
    assert "if-none-match" not in polls(definitions_sink)[-1].headers
    definitions = client._flag_definitions()
    assert definitions is not None
    assert list(definitions.flags) == ["beta"]


@pytest.mark.parametrize("failure", [
    ScriptedResponse(500, body=f"down, secret {SECRET}".encode()),
    ScriptedResponse(503),
    ScriptedResponse(200, delay=3),  # longer than the client's timeout
    ScriptedResponse(200, drop_connection=True),
    ScriptedResponse(200, body=b"<html>not json</html>"),
])
def test_other_failures_keep_the_last_good_definitions_and_log_once(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory,
    caplog: pytest.LogCaptureFixture, failure: ScriptedResponse,
) -> None:
    client = make_local_client(timeout=0.5)
    assert client.load_flags() is True
    loaded = client._flag_definitions()
    definitions_sink.script_definitions(failure, failure)
    assert client.load_flags(timeout=10) is True
    assert client.load_flags(timeout=10) is True
    assert client._flag_definitions() is loaded
    assert len(polls(definitions_sink)) == 3
    [line] = library_lines(caplog, logging.WARNING)
    assert "keeping the last good" in line
    assert SECRET not in caplog.text


def test_a_failure_before_any_load_leaves_none_loaded(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    definitions_sink.script_definitions(500)
    client = make_local_client()
    assert client.load_flags() is False
    assert client._flag_definitions() is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_secret_goes_nowhere_else(
    caplog: pytest.LogCaptureFixture, status: int
) -> None:
    with LoopbackServer(answer_ok) as elsewhere:
        location = f"{elsewhere.url}/flags/definitions"
        with LoopbackServer(redirect_to(status, location)) as redirecting:
            client = Client(API_KEY, host=redirecting.url, secret_key=SECRET)
            try:
                assert client.load_flags() is False
            finally:
                client.shutdown(timeout=2)
        assert elsewhere.connections == 0
    [line] = library_lines(caplog, logging.WARNING)
    assert location in line
    assert "not followed" in line
    assert SECRET not in caplog.text


# -- lifecycle -----------------------------------------------------------------------------------


def test_shutdown_stops_the_thread_and_the_polls(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    before = len(poller_threads())
    client = make_local_client(poll_interval=0.2)
    assert client.load_flags() is True
    assert len(poller_threads()) == before + 1
    assert client.shutdown(timeout=2)
    assert len(poller_threads()) == before
    count = len(polls(definitions_sink))
    time.sleep(0.6)
    assert len(polls(definitions_sink)) == count
    assert client.load_flags() is False  # a closed client loads nothing
    assert len(poller_threads()) == before


@pytest.mark.parametrize(("options", "warned"), [
    ({"secret_key": None}, True), ({"send": False}, False), ({"disabled": True}, False),
])
def test_without_a_secret_key_or_sending_nothing_is_polled(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory,
    options: dict[str, Any], warned: bool, caplog: pytest.LogCaptureFixture,
) -> None:
    before = len(poller_threads())
    client = make_local_client(**options)
    assert client.load_flags() is False
    assert client._flag_definitions() is None
    assert polls(definitions_sink) == []
    assert len(poller_threads()) == before
    warnings = [line for line in library_lines(caplog, logging.WARNING) if "load_flags()" in line]
    assert len(warnings) == warned


def test_load_flags_is_bounded_by_the_flags_timeout(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, delay=20))
    client = make_local_client(flags_timeout=0.5, timeout=30)
    started = time.monotonic()
    assert client.load_flags() is False
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"load_flags() took {elapsed:.1f}s; the answer takes 20 s"
    definitions_sink.stop()


def test_aload_flags_does_not_block_the_event_loop(
    definitions_sink: LocalSink, make_local_client: LocalClientFactory
) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, delay=0.5))
    client = make_local_client()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> bool:
        ticker = asyncio.ensure_future(tick())
        try:
            return await client.aload_flags(timeout=20)
        finally:
            ticker.cancel()

    assert asyncio.run(main()) is True
    assert ticks >= 5, ticks  # about 50 in 0.5 s; a blocked loop gets at most one


def test_the_module_level_functions_load_through_the_routed_client(
    definitions_sink: LocalSink,
) -> None:
    posthog.shutdown()
    try:
        posthog.configure(api_key=API_KEY, host=definitions_sink.url, secret_key=SECRET)
        assert posthog.load_flags() is True
        assert asyncio.run(posthog.aload_flags()) is True
        assert len(polls(definitions_sink)) == 2
        other = Client(API_KEY, host=definitions_sink.url)
        with other.new_context():
            assert posthog.load_flags() is False  # the context's client has no secret key
        other.shutdown(timeout=2)
    finally:
        posthog.shutdown()
        posthog.configure()


def test_the_secret_is_in_no_repr(make_local_client: LocalClientFactory) -> None:
    client = make_local_client()
    client.load_flags()
    poller = client._flags._poller
    assert poller is not None
    for text in (repr(client), repr(client.options), repr(client._flags), repr(poller),
                 repr(poller._source)):
        assert SECRET not in text
