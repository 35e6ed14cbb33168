"""A burst of events, captured as fast as one thread can, into a client with default settings.

Neither client is tuned here: only the host and API key are set, so the queue holds its default
size (10,000 for both) and a burst larger than what the sender drains meanwhile overflows it.
Drops are expected and reported, never a failure. What a run must account for is every event:

    captured = delivered + dropped, where
    dropped  = ours: its own counters (``stats().dropped_by_reason``, every reason);
               official: the captures that returned None (its queue was full; it counts
               nothing itself, it logs a warning per refused event).

An event neither delivered nor counted as dropped (accepted and then lost, or refused without
being counted) fails the run as lost events.
"""

from __future__ import annotations

import gc
import logging
import time

from .core import (
    ARRIVAL_TIMEOUT,
    FLUSH_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    TEN_PROPERTIES,
    Benchmark,
    RunResult,
    Settings,
    WarningCounter,
    api_key_for,
)
from .endpoint import Endpoint
from .variants import DISTINCT_ID, EVENT_NAME, CaptureFn, Variant

__all__ = ["BURST_BENCHMARKS"]


def _capture_burst(capture: CaptureFn, count: int) -> tuple[int, float]:
    """Capture ``count`` events back to back; return how many were accepted, and seconds."""
    accepted = 0
    event, distinct_id, properties = EVENT_NAME, DISTINCT_ID, TEN_PROPERTIES
    start = time.perf_counter()
    for _ in range(count):
        if capture(event, distinct_id=distinct_id, properties=properties) is not None:
            accepted += 1
    return accepted, time.perf_counter() - start


def _dropped(drops: dict[str, int] | None, captured: int, accepted: int) -> int:
    """Events the run counts as dropped (see the module docstring)."""
    if drops is None:  # the client keeps no counts: what capture() refused
        return captured - accepted
    return sum(drops.values())


def _burst_run(variant: Variant, api_key: str, url: str, settings: Settings,
               result: RunResult) -> int:
    """Capture the burst, flush, shut down; fill the metrics; return the expected arrivals."""
    count = settings.burst_events
    client = variant.make_default_client(url, api_key)
    try:
        accepted, seconds = _capture_burst(variant.bind_capture(client), count)
        result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
    finally:
        variant.shutdown(client, SHUTDOWN_TIMEOUT)
    drops = variant.drops_by_reason(client)
    dropped = _dropped(drops, count, accepted)
    result.metrics = {
        "captured": float(count),
        "accepted": float(accepted),
        "dropped": float(dropped),
        "burst_s": seconds,
        "burst_us_per_event": seconds / count * 1e6,
        **{f"dropped_{reason}": float(n) for reason, n in (drops or {}).items()},
    }
    return count - dropped


def _burst(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
    api_key = api_key_for(variant, result.benchmark, result.round)
    logger = logging.getLogger(variant.logger_name)
    counter = WarningCounter()
    endpoint.clear()
    gc.collect()
    logger.addHandler(counter)
    try:
        expected = _burst_run(variant, api_key, endpoint.url, settings, result)
    finally:
        logger.removeHandler(counter)
        result.log_warnings = counter.messages
    # Expecting exactly the events not counted as dropped: any other number fails the run.
    result.delivery = endpoint.delivered(api_key, expected, ARRIVAL_TIMEOUT)
    result.metrics["delivered"] = float(result.delivery.unique)
    result.metrics["lost"] = float(expected - result.delivery.unique)
    endpoint.clear()


BURST_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("burst", "burst", "burst into a default client", _burst),
)
