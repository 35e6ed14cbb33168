"""A send in ``sync_mode`` or ``check`` ends within 2 x ``timeout``, retries and backoff included.

Real loopback servers that read the request and then never answer, or answer one byte at a time
(in the body, or in the status line and headers): a per-read socket timeout never trips on those,
so only a bound on the whole answer ends them. The assertions allow generous slack over the
bound, which is what the code controls; without the bound these sends take 6 s or more.
"""

from __future__ import annotations

import threading
import time

import pytest

from posthog_integrations import Client
from posthog_integrations.check import run_check
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.loopback import Answer, LoopbackServer, answer_never, dribble_body, dribble_head

TIMEOUT = 1.0
BOUND = 2 * TIMEOUT
SLACK = 2.5  # thread start-up, closing sockets, a loaded machine; unbounded took 6.5-12 s
# Each byte comes within the 1 s socket timeout; the whole answer would take 12 s.
SLOW_ANSWERS = {
    "never": answer_never,
    "dribbled body": dribble_body(interval=0.4, length=30),
    "dribbled head": dribble_head(interval=0.4),
}


@pytest.mark.parametrize("answer", list(SLOW_ANSWERS.values()), ids=list(SLOW_ANSWERS))
def test_a_sync_mode_send_ends_within_twice_the_timeout(
    answer: Answer, caplog: pytest.LogCaptureFixture
) -> None:
    with LoopbackServer(answer) as server:
        client = Client(API_KEY, host=server.url, sync_mode=True, timeout=TIMEOUT,
                        max_retries=5, retry_base_delay=0.02)
        started = time.monotonic()
        uuid = client.capture("e", distinct_id="u")
        elapsed = time.monotonic() - started
        client.shutdown(timeout=1)

    assert uuid is not None
    assert elapsed < BOUND + SLACK, f"capture() in sync_mode took {elapsed:.2f}s"
    assert len(server.requests) >= 1
    stats = client.stats()
    assert (stats.sent, stats.dropped_by_reason["failed"], stats.failed_batches) == (0, 1, 1)
    assert "no complete answer within" in caplog.text


@pytest.mark.parametrize("answer", list(SLOW_ANSWERS.values()), ids=list(SLOW_ANSWERS))
def test_check_ends_within_twice_the_timeout_and_says_why(answer: Answer) -> None:
    with LoopbackServer(answer) as server:
        started = time.monotonic()
        result = run_check({"api_key": API_KEY, "host": server.url}, timeout=TIMEOUT)
        elapsed = time.monotonic() - started

    assert elapsed < BOUND + SLACK, f"the check took {elapsed:.2f}s"
    assert not result.ok
    assert "did not answer in time" in result.message


def test_a_background_attempt_is_cut_at_the_timeout_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The sender thread is bounded the same way: a dribbling answer does not hold it."""
    with LoopbackServer(dribble_body(interval=0.4, length=30)) as server:
        client = Client(API_KEY, host=server.url, timeout=TIMEOUT, max_retries=1,
                        retry_base_delay=0.02)
        client.capture("e", distinct_id="u")
        started = time.monotonic()
        assert client.flush(timeout=10)  # finished: both attempts were cut
        elapsed = time.monotonic() - started
        client.shutdown(timeout=1)

    assert len(server.requests) == 2
    assert elapsed < 2 * TIMEOUT + SLACK
    assert client.stats().dropped_by_reason["failed"] == 1


def test_every_request_shares_one_watchdog_thread(sink: LocalSink) -> None:
    """The deadline costs no thread per request: one watchdog serves them all, and stays."""
    client = Client(API_KEY, host=sink.url, sync_mode=True, timeout=TIMEOUT)
    seen: list[set[int]] = []
    for number in range(5):
        assert client.capture(f"e{number}", distinct_id="u") is not None
        seen.append({thread.ident or 0 for thread in threading.enumerate()
                     if thread.name == "posthog-integrations-cutoff"})
    assert len(seen[0]) == 1
    assert all(watchdogs == seen[0] for watchdogs in seen)
    assert sink.store.count() == 5
