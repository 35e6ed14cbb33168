"""``python -m bench.memory_probe VARIANT EVENTS``: resident memory of a queue that cannot drain.

Run in a fresh process per measurement (see :mod:`bench.memory`). The client points at a TCP
socket that listens but is never read, so the first request hangs. One event is captured and
flushed for at most a second first: the sender thread, its connection and its HTTP stack are
then part of the baseline, and the hanging request holds only that event. Then ``EVENTS``
events of about 1 KiB each (10 distinct 100-character strings) are captured; they all stay
queued. Prints one JSON line with the resident set size before and after, then exits at once
(``os._exit``), without waiting for the request that will never be answered.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from .variants import DISTINCT_ID, EVENT_NAME, variant_named

__all__ = ["main", "rss_bytes"]

PROPERTY_KEYS = tuple(f"prop_{k}" for k in range(10))
VALUE_CHARS = 100
FIRST_FLUSH_S = 1.0


def rss_bytes() -> int:
    """Current resident set size (Linux), else the peak from ``getrusage``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, else KiB


def _blackhole() -> socket.socket:
    """A listening socket that never accepts: connections open, requests are never read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def _properties(index: int) -> dict[str, str]:
    """About 1 KiB of properties, every value a new string of its own."""
    return {key: f"event {index:07d} {key} ".ljust(VALUE_CHARS, "x") for key in PROPERTY_KEYS}


def _measure(name: str, events: int) -> dict[str, Any]:
    listener = _blackhole()
    variant = variant_named(name)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    client = variant.make_client(url, "phc_bench_memory")
    capture = variant.bind_capture(client)
    capture(EVENT_NAME, distinct_id=DISTINCT_ID, properties=_properties(-1))
    variant.flush(client, FIRST_FLUSH_S)  # times out: the request hangs
    gc.collect()
    baseline = rss_bytes()
    accepted = sum(
        capture(EVENT_NAME, distinct_id=DISTINCT_ID, properties=_properties(i)) is not None
        for i in range(events)
    )
    gc.collect()
    after = rss_bytes()
    return {"variant": name, "events": events, "accepted": accepted,
            "baseline_bytes": baseline, "after_bytes": after}


def main(argv: Sequence[str]) -> None:
    """Print the measurement as JSON and end the process without any cleanup."""
    name, events = argv[0], int(argv[1])
    try:
        report = _measure(name, events)
    except Exception as exc:
        report = {"variant": name, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
