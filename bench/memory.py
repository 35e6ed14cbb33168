"""Resident memory that a client's queue costs, each variant measured in a fresh process.

Both clients get ``max_queue_size`` large enough to hold every event; their sender cannot
deliver (see :mod:`bench.memory_probe`), so the events stay queued. The row is the growth of the
process's resident set over the captures, after ``gc.collect()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .core import Benchmark, RunResult, Settings
from .endpoint import Endpoint
from .servers import ROOT, child_env
from .variants import Variant

__all__ = ["MEMORY_BENCHMARKS"]

PROBE_TIMEOUT_S = 120.0
MIB = 1024 * 1024


def _probe(variant: str, events: int) -> dict[str, Any]:
    """Run :mod:`bench.memory_probe` in a new interpreter; return its JSON report."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory_probe", variant, str(events)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the memory probe printed nothing: {completed.stderr[-500:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    if "error" in report:
        raise RuntimeError(f"the memory probe failed: {report['error']}")
    return report


def _memory(variant: Variant, endpoint: Endpoint, settings: Settings,
            result: RunResult) -> None:
    result.sends_events = False
    events = settings.memory_events
    report = _probe(variant.name, events)
    if report["accepted"] != events:
        raise RuntimeError(f"only {report['accepted']:,} of {events:,} events were queued")
    delta = report["after_bytes"] - report["baseline_bytes"]
    result.metrics = {
        "rss_delta_mib": delta / MIB,
        "bytes_per_event": delta / events,
        "baseline_mib": report["baseline_bytes"] / MIB,
    }


MEMORY_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("memory", "memory", "memory of a full queue, fresh process", _memory),
)
