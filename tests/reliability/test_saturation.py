"""Saturation: with the endpoint blocked, 100,000 captures keep memory bounded and drops counted.

The local capture endpoint hangs on the first request, so the sender is stuck in it (its timeout
is the default 15 s) while four threads capture 100,000 events against the default
``max_queue_size`` of 10,000. The test then checks that

* the process's resident memory grew by a bounded amount (Linux only: read from /proc);
* every refused event is counted as ``queue_full`` and the logger warned a bounded number of
  times, not once per drop;
* ``capture()`` never waited while refusing events: a profile hook in one of the producing
  threads sees no socket, HTTP, sleep or wait call inside it;
* once the endpoint is back (restarted on the same port), everything the queue accepted arrives,
  once, and events captured after the recovery arrive too.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.blocking import WaitRecorder
from tests.conftest import ClientFactory

CAPTURES = 100_000
THREADS = 4
MAX_QUEUE_SIZE = 10_000  # the client's default, restated to compute the expectations
MAX_BATCH_SIZE = 1_000  # the default: the most the hung request can hold
AFTER_RECOVERY = 100
# Measured growth is about 13 MB (10,000 queued events plus the test's own result lists). The
# same run with a queue that never refuses grows by about 70 MB, so 40 MB leaves 3x headroom
# over the measurement and still fails if the queue stops bounding memory.
MAX_RSS_GROWTH_MB = 40.0
QUEUE_FULL_WARNING_INTERVAL = 10.0


def resident_mb() -> float | None:
    """This process's resident set size in MB, or None where /proc is not available."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def capture_flood(
    client: Client, recorder: WaitRecorder
) -> tuple[list[str | None], list[float]]:
    """Capture ``CAPTURES`` events from ``THREADS`` threads; return the results and call times.

    The first thread's calls are watched by ``recorder`` (one thread only: the hook slows the
    calls it watches several times over).
    """
    results: list[str | None] = []
    durations: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def produce(worker: int) -> None:
        mine: list[str | None] = []
        timings: list[float] = []
        start.wait()
        for index in range(CAPTURES // THREADS):
            began = time.perf_counter()
            if worker == 0:
                with recorder.watching():
                    uuid = client.capture("flood", distinct_id=f"user-{worker}",
                                          properties={"worker": worker, "index": index})
            else:
                uuid = client.capture("flood", distinct_id=f"user-{worker}",
                                      properties={"worker": worker, "index": index})
            mine.append(uuid)
            timings.append(time.perf_counter() - began)
        with lock:
            results.extend(mine)
            durations.extend(timings)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, durations


def test_blocked_endpoint_bounds_memory_counts_drops_and_recovers(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script(ScriptedResponse(hang=True))
    # Generous retries: restarting the sink refuses connections for a moment.
    client = make_client(retry_base_delay=0.05, max_retries=10)

    rss_before = resident_mb()
    began = time.monotonic()
    recorder = WaitRecorder()
    results, durations = capture_flood(client, recorder)
    elapsed = time.monotonic() - began
    rss_after = resident_mb()

    # The endpoint was blocked the whole time: one request, still unanswered.
    [hung] = sink.requests()
    assert hung.status == 0
    assert sink.events() == []

    accepted = [uuid for uuid in results if uuid is not None]
    stats = client.stats()
    assert len(results) == CAPTURES
    assert stats.accepted == len(accepted)
    # The queue may overshoot by one event per producing thread (see EventQueue).
    assert MAX_QUEUE_SIZE <= stats.queued <= MAX_QUEUE_SIZE + THREADS
    assert len(accepted) == stats.queued + len(hung.uuids)
    assert len(hung.uuids) <= MAX_BATCH_SIZE
    assert stats.dropped_by_reason["queue_full"] == CAPTURES - len(accepted)
    assert stats.dropped == stats.dropped_by_reason["queue_full"]

    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert 1 <= len(warnings) <= 1 + int(elapsed // QUEUE_FULL_WARNING_INTERVAL)
    assert f"max_queue_size={MAX_QUEUE_SIZE}" in warnings[0].getMessage()

    assert recorder.calls == {}, f"capture() waited: {dict(recorder.calls)}"
    # The hung request waits 15 s; a capture() that waited on it would take that long. The bound
    # is loose because four unpaced producers share two cores with the rest of the machine.
    durations.sort()
    assert durations[-1] < 5.0, f"slowest capture() {durations[-1] * 1e3:.1f} ms"

    if rss_before is not None and rss_after is not None:
        assert rss_after - rss_before < MAX_RSS_GROWTH_MB, (rss_before, rss_after)

    # Unblock: stopping the sink closes the hung connection; it comes back on the same port.
    sink.stop()
    sink.start()
    assert client.flush(timeout=30)
    later = [client.capture("after recovery", distinct_id="user-0") for _ in range(AFTER_RECOVERY)]
    assert None not in later
    assert client.flush(timeout=10)

    stored = [event["uuid"] for event in sink.events()]
    assert len(stored) == len(set(stored)) == len(accepted) + AFTER_RECOVERY
    assert set(stored) == set(accepted) | set(later)
    final = client.stats()
    assert final.sent == final.accepted == len(accepted) + AFTER_RECOVERY
    assert final.queued == 0
    assert final.retried >= 1  # the hung request, resent with the same uuids
    assert final.dropped == final.dropped_by_reason["queue_full"] == CAPTURES - len(accepted)
