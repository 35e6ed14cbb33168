"""Exception storms: a token bucket per kind of exception holds back repeats, counted and said."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest
from flask import Flask

from posthog_integrations import Client, ConfigurationError
from posthog_integrations.core.notices import Notices
from posthog_integrations.core.options import ClientOptions
from posthog_integrations.core.stats import Counters
from posthog_integrations.core.storms import (
    DEFAULT_BURST,
    DEFAULT_PER_SECOND,
    MAX_KINDS,
    StormLimiter,
    kind_of,
)
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory, delivered
from tests.forking import child_exit_code

HELD = "$exception_storm_held_back"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CheckoutFailed(Exception):
    pass


def failure(kind: type[BaseException] = CheckoutFailed) -> BaseException:
    """A fresh exception raised from one place, as a failing endpoint raises on each request."""
    try:
        raise kind("checkout failed")
    except BaseException as error:
        return error


def other_failure() -> BaseException:
    try:
        raise CheckoutFailed("checkout failed")
    except CheckoutFailed as error:
        return error


def limiter(burst: int, per_second: float, clock: Clock, **options: Any) -> StormLimiter:
    return StormLimiter((burst, per_second), Counters(), Notices(), clock=clock, **options)


def admitted(storms: StormLimiter, count: int) -> int:
    return sum(storms.admit(failure()) is not None for _ in range(count))


def storm_client(make_client: ClientFactory, clock: Clock, **options: Any) -> Client:
    client = make_client(**options)
    client._storms._clock = clock  # the bucket reads this test's clock, never sleeps
    return client


def test_a_kind_passes_its_burst_then_what_the_rate_refills() -> None:
    clock = Clock()
    storms = limiter(5, 2.0, clock)
    assert admitted(storms, 100) == 5
    clock.now += 1.0  # two tokens
    assert admitted(storms, 100) == 2
    clock.now += 0.25  # half a token: nothing yet
    assert admitted(storms, 100) == 0
    clock.now += 0.25
    assert admitted(storms, 100) == 1
    clock.now += 3600.0  # an idle hour refills the bucket to the burst, no more
    assert admitted(storms, 100) == 5


def test_kinds_are_independent() -> None:
    clock = Clock()
    storms = limiter(3, 1.0, clock)
    assert admitted(storms, 10) == 3
    # Another class raised at the same line, and the same class raised elsewhere, are other kinds.
    assert sum(storms.admit(failure(ValueError)) is not None for _ in range(10)) == 3
    assert sum(storms.admit(other_failure()) is not None for _ in range(10)) == 3
    assert storms.kinds == 3
    assert kind_of(failure())[:2] == (__name__, "CheckoutFailed")


def test_an_exception_never_raised_is_placed_at_its_caller() -> None:
    first = [kind_of(ValueError("x")) for _ in range(2)]
    second = kind_of(ValueError("x"))
    assert first[0] == first[1]
    assert first[0][2] == second[2] == __file__
    assert first[0][3] != second[3]


def test_the_next_event_sent_carries_how_many_were_held_back(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock, exception_rate_limit=(2, 1.0))
    uuids = [client.capture_exception(failure()) for _ in range(7)]
    assert [uuid is not None for uuid in uuids] == [True, True] + [False] * 5
    clock.now += 1.0
    carrier = client.capture_exception(failure())
    assert client.capture_exception(failure()) is None  # the refilled token is spent
    clock.now += 1.0
    after = client.capture_exception(failure())
    events = {event["uuid"]: event["properties"] for event in
              delivered(client, sink, event="$exception")}
    assert set(events) == {uuids[0], uuids[1], carrier, after}
    assert [HELD in events[uuid] for uuid in uuids[:2]] == [False, False]
    assert events[carrier][HELD] == 5
    assert events[after][HELD] == 1


def test_held_back_events_are_counted_and_logged_once(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock, exception_rate_limit={"burst": 3, "per_second": 1})
    for _ in range(50):
        client.capture_exception(failure())
    stats = client.stats()
    assert stats.dropped_by_reason["exception_storm"] == 47
    assert stats.dropped == 47
    storm_lines = [record for record in caplog.records if "exception storm" in record.message]
    assert len(storm_lines) == 1
    assert storm_lines[0].levelno == logging.WARNING
    assert "CheckoutFailed" in storm_lines[0].message
    assert "exception_storm" in storm_lines[0].message


def test_an_exception_held_back_is_not_captured_by_another_path(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock, exception_rate_limit=(1, 1.0))
    assert client.capture_exception(failure()) is not None
    held = failure()
    assert client._capture_escaped(held, "wsgi.middleware") is None  # held back
    clock.now += 60.0
    # The framework's log of the same exception, later: it was seen, so it is not sent either.
    assert client.capture_exception(held) is None
    assert client.capture_exception(failure()) is not None
    events = delivered(client, sink, event="$exception")
    assert len(events) == 2
    assert client.stats().dropped_by_reason["exception_storm"] == 1


def test_the_limit_can_be_switched_off(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(exception_rate_limit=False)
    assert all(client.capture_exception(failure()) is not None for _ in range(100))
    assert len(delivered(client, sink, event="$exception")) == 100
    assert client.stats().dropped_by_reason["exception_storm"] == 0


def test_the_limit_is_on_by_default() -> None:
    assert ClientOptions.resolve({}).exception_rate_limit == (DEFAULT_BURST, DEFAULT_PER_SECOND)


@pytest.mark.parametrize(("value", "expected"), [
    ((10, 1), (10, 1.0)),
    ([5, 0.5], (5, 0.5)),
    ({"burst": 100, "per_second": 20}, (100, 20.0)),
    (False, None),
])
def test_the_limit_is_read_from_a_pair_or_a_mapping(value: Any, expected: Any) -> None:
    assert ClientOptions.resolve({"exception_rate_limit": value}).exception_rate_limit == expected


@pytest.mark.parametrize(("value", "message"), [
    (30, "must be (burst, per_second)"),
    ((30,), "must be (burst, per_second)"),
    ({"burst": 30}, "must be (burst, per_second)"),
    (True, "must be (burst, per_second)"),
    ((0, 2.0), "burst must be an integer of at least 1, got 0"),
    ((2.5, 2.0), "burst must be an integer of at least 1, got 2.5"),
    ((30, 0), "per_second must be a positive number, got 0"),
    ((30, -1.0), "per_second must be a positive number"),
    ((30, float("nan")), "per_second must be a positive number"),
    ((30, "2"), "per_second must be a positive number, got '2'"),
])
def test_a_bad_limit_fails_at_configuration(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match="exception_rate_limit") as raised:
        Client("phc_key", exception_rate_limit=value, send=False)
    assert message in str(raised.value)


def test_a_flood_of_distinct_kinds_keeps_memory_bounded() -> None:
    clock = Clock()
    storms = limiter(2, 1.0, clock, max_kinds=50)
    kinds = [type(f"Failure{i}", (Exception,), {}) for i in range(5000)]
    assert all(storms.admit(failure(kind)) == 0 for kind in kinds)
    assert storms.kinds == 50
    # The most recently seen kinds are the ones remembered: the last one is still limited.
    assert [storms.admit(failure(kinds[-1])) for _ in range(3)] == [0, None, None]


def test_the_default_client_tracks_at_most_max_kinds(make_client: ClientFactory) -> None:
    client = make_client(send=False)
    for i in range(MAX_KINDS + 200):
        client.capture_exception(failure(type(f"Failure{i}", (Exception,), {})))
    assert client._storms.kinds == MAX_KINDS
    assert client.stats().dropped_by_reason["exception_storm"] == 0


def test_threads_capturing_at_once_account_for_every_exception(
    make_client: ClientFactory,
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock, send=False, exception_rate_limit=(25, 1.0))
    threads, per_thread = 8, 400
    start = threading.Barrier(threads)
    results: list[list[bool]] = [[] for _ in range(threads)]

    def capture(slot: int) -> None:
        start.wait()
        for _ in range(per_thread):
            results[slot].append(client.capture_exception(failure()) is not None)

    workers = [threading.Thread(target=capture, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sent = sum(sum(result) for result in results)
    stats = client.stats()
    assert sent == 25  # the clock stands still: exactly the burst
    assert stats.accepted == sent
    assert stats.accepted + stats.dropped_by_reason["exception_storm"] == threads * per_thread


def test_a_failing_flask_endpoint_sends_a_burst_then_the_refill(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock)  # the defaults
    app = Flask(__name__)

    @app.route("/checkout")
    def checkout() -> str:
        raise CheckoutFailed("payment provider down")

    PostHog(app, client=client)
    http = app.test_client()
    for request in range(500):
        if request == 250:
            clock.now += 5.0  # halfway, five seconds pass: ten more events
        assert http.get("/checkout").status_code == 500
    events = delivered(client, sink, event="$exception")
    assert len(events) == DEFAULT_BURST + 5 * DEFAULT_PER_SECOND
    held_back = 500 - len(events)
    assert client.stats().dropped_by_reason["exception_storm"] == held_back
    # The first event after the pause carries the requests held back during the burst's wait.
    counts = [event["properties"].get(HELD, 0) for event in events]
    assert sum(counts) == 250 - DEFAULT_BURST
    assert counts.count(0) == len(counts) - 1
    clock.now += 1.0
    assert http.get("/checkout").status_code == 500
    last = delivered(client, sink, event="$exception")[-1]
    assert last["properties"][HELD] == 250 - 5 * DEFAULT_PER_SECOND
    assert last["properties"]["$exception_type"] == "CheckoutFailed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_with_full_buckets(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    clock = Clock()
    client = storm_client(make_client, clock, exception_rate_limit=(3, 1.0))
    assert [client.capture_exception(failure()) is not None for _ in range(4)] == [
        True, True, True, False]
    pid = os.fork()
    if pid == 0:  # the child: its parent's storm is not its own
        code = 1
        try:
            sent = [client.capture_exception(failure()) is not None for _ in range(4)]
            code = 0 if sent == [True, True, True, False] and client.flush(timeout=5) else 2
        finally:
            os._exit(code)
    assert child_exit_code(pid, timeout=30, hung="the forked child hung") == 0
    assert client.capture_exception(failure()) is None  # the parent's bucket is still empty
    assert len(delivered(client, sink, event="$exception")) == 3 + 3


def test_each_recording_starts_with_full_buckets() -> None:
    from posthog_integrations.testing import capture_events

    client = Client(send=False)  # no key: it records inside capture_events(), nothing else
    try:
        with capture_events() as first:
            for _ in range(DEFAULT_BURST + 10):
                client.capture_exception(failure())
        assert len(first.named("$exception")) == DEFAULT_BURST
        # A later test's first exception of that kind is recorded, whatever earlier tests did.
        with capture_events() as second:
            client.capture_exception(failure())
        assert len(second.named("$exception")) == 1
    finally:
        client.shutdown()
