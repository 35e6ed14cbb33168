"""The benchmarks: ``capture()`` cost on the calling thread, and delivered events per second.

Every run uses a fresh client with its own API key, pointed at the endpoint process, and is
checked at the endpoint afterwards: a run whose events did not all arrive is a failed run.
Rounds interleave the variants, rotating their order each round (A B, B A, ...).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from .endpoint import Delivery, Endpoint
from .variants import DISTINCT_ID, EVENT_NAME, Variant

__all__ = [
    "ARRIVAL_TIMEOUT",
    "BENCHMARKS",
    "FLUSH_TIMEOUT",
    "FULL",
    "QUICK",
    "SHUTDOWN_TIMEOUT",
    "TEN_PROPERTIES",
    "Benchmark",
    "RunResult",
    "Settings",
    "WarningCounter",
    "api_key_for",
    "paired_samples",
    "percentile",
    "run_all",
    "run_with_client",
    "samples_metrics",
    "storm_captures",
]

TEN_PROPERTIES: dict[str, Any] = {f"k{i}": i for i in range(10)}
STORM_REASON = "exception_storm"  # ours: what its storm limiter held back
FLUSH_TIMEOUT = 120.0
SHUTDOWN_TIMEOUT = 30.0
ARRIVAL_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much work each run does."""

    rounds: int
    warmup_rounds: int  # whole rounds run first and discarded (they warm the endpoint, too)
    samples: int  # timed samples per capture run
    block: int  # capture() calls per sample
    warmup_blocks: int  # untimed blocks before the samples
    delivery_events: int
    request_samples: int  # timed samples per direct-call run, for the bare and wrapped app each
    request_block: int  # requests per sample
    server_seconds: float  # load per real-server measurement (after a 1 s warm-up)
    server_connections: int  # keep-alive connections of the load generator
    burst_events: int  # events captured in one burst into a default client
    memory_events: int  # events held in a queue that cannot drain, for the memory probe

    def describe(self) -> str:
        warmup = f" after {self.warmup_rounds} warm-up round(s)" if self.warmup_rounds else ""
        return (
            f"{self.rounds} round(s){warmup}; capture: {self.warmup_blocks} warm-up +"
            f" {self.samples} timed samples of {self.block} calls;"
            f" delivery: {self.delivery_events:,} events; requests: {self.request_samples}"
            f" samples of {self.request_block}; servers: {self.server_seconds:g} s at"
            f" {self.server_connections} connections; burst: {self.burst_events:,} events;"
            f" memory: {self.memory_events:,} queued events"
        )


# An even number of rounds runs each variant first equally often.
FULL = Settings(
    rounds=6, warmup_rounds=1, samples=150, block=200, warmup_blocks=20, delivery_events=50_000,
    request_samples=60, request_block=200, server_seconds=10.0, server_connections=16,
    burst_events=50_000, memory_events=10_000,
)
# The quick burst still outruns the default 10,000-event queue, so CI goes through the drop path.
QUICK = Settings(
    rounds=1, warmup_rounds=0, samples=15, block=200, warmup_blocks=5, delivery_events=5_000,
    request_samples=6, request_block=100, server_seconds=1.0, server_connections=8,
    burst_events=20_000, memory_events=2_000,
)


@dataclasses.dataclass
class RunResult:
    """One variant's run of one benchmark in one round."""

    benchmark: str
    variant: str
    round: int  # 0-based; warm-up rounds are negative
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    samples_us: list[float] = dataclasses.field(default_factory=list)
    delivery: Delivery | None = None
    client_dropped: int | None = None
    flush_drained: bool | None = None
    log_warnings: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    sends_events: bool = True  # False for benchmarks that never talk to the endpoint

    @property
    def problems(self) -> list[str]:
        """Why this run does not count as a success (empty when it does)."""
        found = []
        if self.error is not None:
            found.append(self.error)
        if self.delivery is None:
            if self.error is None and self.sends_events:
                found.append("no delivery check")
        elif not self.delivery.complete:
            found.append(f"lost events: {self.delivery.describe()}")
        if self.client_dropped:
            found.append(f"the client reports {self.client_dropped:,} dropped events")
        if self.flush_drained is False:
            found.append("flush() returned False (not drained in time)")
        if self.error is None and not self.metrics:
            found.append("no numbers")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def warmup(self) -> bool:
        return self.round < 0


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A named benchmark: ``run(variant, endpoint, settings, result)`` fills ``result``."""

    key: str
    group: str  # what --only selects
    title: str
    run: Callable[[Variant, Endpoint, Settings, RunResult], None]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile of ``values`` (``fraction`` in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def api_key_for(variant: Variant, benchmark: str, round_index: int) -> str:
    return f"phc_bench_{variant.name}_{benchmark}_r{round_index}_{uuid.uuid4().hex[:10]}"


class WarningCounter(logging.Handler):
    """Collects the warnings and errors a library logs during one run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(f"{record.levelname}: {record.getMessage()}"[:300])
        except Exception:
            self.messages.append(f"{record.levelname}: (unformattable message)")


def run_with_client(
    variant: Variant,
    endpoint: Endpoint,
    result: RunResult,
    body: Callable[[Any], int],
    *,
    make_client: Callable[[str, str], Any] | None = None,
    expected_drops: frozenset[str] = frozenset(),
) -> None:
    """Build a client, run ``body(client) -> events expected to arrive``, shut down, check
    arrival. Drops under ``expected_drops`` reasons (the body leaves them out of what it
    expects) do not fail the run; any other drop does."""
    api_key = api_key_for(variant, result.benchmark, result.round)
    logger = logging.getLogger(variant.logger_name)
    counter = WarningCounter()
    logger.addHandler(counter)
    captured = 0
    client: Any = None
    try:
        endpoint.clear()
        gc.collect()
        client = (make_client or variant.make_client)(endpoint.url, api_key)
        captured = body(client)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            try:
                result.client_dropped = _unexpected_drops(variant, client, expected_drops)
                variant.shutdown(client, SHUTDOWN_TIMEOUT)
            except Exception as exc:
                result.error = result.error or f"shutdown failed: {type(exc).__name__}: {exc}"
        logger.removeHandler(counter)
        result.log_warnings = counter.messages
    if captured:
        try:
            result.delivery = endpoint.delivered(api_key, captured, ARRIVAL_TIMEOUT)
        except Exception as exc:
            result.error = result.error or f"endpoint check failed: {exc}"
    try:
        endpoint.clear()
    except Exception as exc:
        result.error = result.error or f"endpoint clear failed: {exc}"


def _unexpected_drops(variant: Variant, client: Any, expected: frozenset[str]) -> int | None:
    drops = variant.drops_by_reason(client) if expected else None
    if drops is None:
        return variant.dropped(client)
    return sum(count for reason, count in drops.items() if reason not in expected)


def _capture_cost(properties: Mapping[str, Any] | None) -> Callable[
    [Variant, Endpoint, Settings, RunResult], None
]:
    def run(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
        def body(client: Any) -> int:
            capture = variant.bind_capture(client)
            block = range(settings.block)
            clock = time.perf_counter_ns
            event, distinct_id, props = EVENT_NAME, DISTINCT_ID, properties
            for _ in range(settings.warmup_blocks):
                for _ in block:
                    capture(event, distinct_id=distinct_id, properties=props)
            samples: list[float] = []
            for _ in range(settings.samples):
                start = clock()
                for _ in block:
                    capture(event, distinct_id=distinct_id, properties=props)
                samples.append((clock() - start) / settings.block / 1000.0)
            captured = (settings.warmup_blocks + settings.samples) * settings.block
            # Deliver the backlog before shutdown (not timed): shutdown timeouts differ.
            result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
            result.samples_us = samples
            result.metrics = samples_metrics(samples)
            return captured

        run_with_client(variant, endpoint, result, body)

    return run


def _delivery(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
    _deliver(variant, endpoint, settings, result, variant.make_client)


def _delivery_v1(
    variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult
) -> None:
    """The delivery benchmark with both clients in capture v1 mode; a run that sent anything
    to another endpoint did not measure v1, and fails."""
    _deliver(variant, endpoint, settings, result, variant.make_v1_client)
    if result.delivery is not None and not result.delivery.v1_only:
        result.error = result.error or (
            f"not all requests went to the v1 endpoint: {result.delivery.paths}")


def _deliver(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult,
             make_client: Callable[[str, str], Any]) -> None:
    def body(client: Any) -> int:
        capture = variant.bind_capture(client)
        count = settings.delivery_events
        event, distinct_id, props = EVENT_NAME, DISTINCT_ID, TEN_PROPERTIES
        cpu_start = time.process_time()
        start = time.perf_counter()
        for _ in range(count):
            capture(event, distinct_id=distinct_id, properties=props)
        captured_at = time.perf_counter()
        result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
        end = time.perf_counter()
        cpu = time.process_time() - cpu_start
        elapsed = end - start
        result.metrics = {
            "events_per_s": count / elapsed,
            "cpu_s_per_10k": cpu * 10_000 / count,
            "elapsed_s": elapsed,
            "capture_loop_s": captured_at - start,
            "flush_s": end - captured_at,
            "cpu_s": cpu,
        }
        return count

    run_with_client(variant, endpoint, result, body, make_client=make_client)


def samples_metrics(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": statistics.median(samples),
        "p10_us": percentile(samples, 0.10),
        "p90_us": percentile(samples, 0.90),
        "q1_us": percentile(samples, 0.25),
        "q3_us": percentile(samples, 0.75),
        "samples": float(len(samples)),
    }


def paired_samples(bare: Any, wrapped: Any, time_block: Callable[[Any, int], float],
                   samples: int, block: int, result: RunResult) -> None:
    """Time ``block`` requests through ``bare`` and ``wrapped`` alternately (which goes first
    swaps every sample), and record per-request µs and the ratio of the medians in ``result``.
    """
    bare_us: list[float] = []
    wrapped_us: list[float] = []
    for sample in range(samples):
        order = [(bare, bare_us), (wrapped, wrapped_us)]
        for target, times in order if sample % 2 else reversed(order):
            times.append(time_block(target, block) / block * 1e6)
    median, bare_median = statistics.median(wrapped_us), statistics.median(bare_us)
    result.samples_us = wrapped_us
    result.metrics = {
        **samples_metrics(wrapped_us),
        "bare_us": bare_median,
        "ratio_to_bare": median / bare_median,
    }


def _context(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
    """new_context() + 5 tags + identify + session, enter to exit; no client involved."""
    result.sends_events = False
    block = variant.context_block()
    calls = range(settings.block)
    clock = time.perf_counter_ns
    for _ in range(settings.warmup_blocks * settings.block):
        block()
    samples: list[float] = []
    for _ in range(settings.samples):
        start = clock()
        for _ in calls:
            block()
        samples.append((clock() - start) / settings.block / 1000.0)
    result.samples_us = samples
    result.metrics = samples_metrics(samples)


def _chained_error() -> BaseException:
    orders: dict[str, int] = {}
    try:
        try:
            try:
                orders["order"]
            except KeyError as missing:
                raise ValueError("invalid order") from missing
        except ValueError as invalid:
            raise RuntimeError("checkout failed") from invalid
    except RuntimeError as error:
        return error
    raise AssertionError("unreachable")


def _timed_exception_captures(variant: Variant, client: Any, count: int) -> list[float]:
    """µs per capture_exception() of ``count`` fresh 3-deep chains (raising them is not timed)."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(count):
        error = _chained_error()
        start = clock()
        variant.capture_exception(client, error)
        samples.append((clock() - start) / 1000.0)
    return samples


def _capture_exception(
    variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult
) -> None:
    """capture_exception() of a fresh 3-deep chained exception (raising it is not timed)."""

    def body(client: Any) -> int:
        count = settings.samples
        for _ in range(settings.warmup_blocks):
            variant.capture_exception(client, _chained_error())
        samples = _timed_exception_captures(variant, client, count)
        result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
        result.samples_us = samples
        result.metrics = samples_metrics(samples)
        return settings.warmup_blocks + count

    run_with_client(variant, endpoint, result, body)


def storm_captures(settings: Settings) -> int:
    """How many exceptions of one kind the storm benchmark captures."""
    return settings.samples * 10


def _exception_storm(
    variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult
) -> None:
    """capture_exception() of the same kind of exception (a fresh 3-deep chain raised at one
    place), over and over, as an endpoint failing on every request does: ours sends its burst
    and holds the rest back, counted under ``exception_storm``; the official client sends all.
    """

    def body(client: Any) -> int:
        count = storm_captures(settings)
        samples = _timed_exception_captures(variant, client, count)
        result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
        held_back = (variant.drops_by_reason(client) or {}).get(STORM_REASON, 0)
        result.samples_us = samples
        result.metrics = {
            **samples_metrics(samples),
            "captured": float(count),
            "held_back": float(held_back),
            "delivered": float(count - held_back),
        }
        return count - held_back

    run_with_client(variant, endpoint, result, body, make_client=variant.make_storm_client,
                    expected_drops=frozenset({STORM_REASON}))


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("context", "context", "context: enter, 5 tags, identify, session", _context),
    Benchmark("capture_exception", "exception", "capture_exception(), 3-deep chain",
              _capture_exception),
    Benchmark("exception_storm", "exception", "capture_exception() under a storm",
              _exception_storm),
    Benchmark("capture_0", "capture", "capture(), 0 properties", _capture_cost(None)),
    Benchmark("capture_10", "capture", "capture(), 10 properties", _capture_cost(TEN_PROPERTIES)),
    Benchmark("delivery", "delivery", "delivery of gzip batches, 10 properties", _delivery),
    Benchmark("delivery_v1", "delivery_v1", "delivery of gzip batches, v1", _delivery_v1),
)


def _rotated(variants: Sequence[Variant], round_index: int) -> list[Variant]:
    shift = round_index % len(variants)
    return [*variants[shift:], *variants[:shift]]


def _progress(result: RunResult, title: str) -> str:
    metrics = result.metrics
    if "median_us" in metrics:
        numbers = (
            f"{metrics['median_us']:7.2f} µs/call"
            f" (p10-p90 {metrics['p10_us']:.2f}-{metrics['p90_us']:.2f})"
        )
        if "bare_us" in metrics:
            numbers += f", {metrics['ratio_to_bare']:.2f}x bare's {metrics['bare_us']:.2f}"
    elif "requests_per_s" in metrics:
        numbers = (
            f"{metrics['requests_per_s']:9,.0f} requests/s, p99 {metrics['p99_ms']:.2f} ms"
            f" ({metrics['ratio_to_bare']:.3f}x bare's {metrics['bare_requests_per_s']:,.0f})"
        )
    elif "accepted" in metrics:
        numbers = (
            f"{metrics['accepted']:7,.0f} accepted, {metrics['dropped']:,.0f} dropped,"
            f" {metrics.get('delivered', 0):,.0f} delivered;"
            f" {metrics['burst_us_per_event']:.2f} µs/event"
        )
    elif "rss_delta_mib" in metrics:
        numbers = (
            f"{metrics['rss_delta_mib']:7.1f} MiB RSS growth,"
            f" {metrics['bytes_per_event']:,.0f} bytes/event"
        )
    elif "events_per_s" in metrics:
        numbers = (
            f"{metrics['events_per_s']:9,.0f} events/s, "
            f"{metrics['cpu_s_per_10k']:.3f} CPU-s/10k"
        )
    else:
        numbers = "no numbers"
    arrived = "" if result.delivery is None else f"; {result.delivery.describe()}"
    status = "ok" if result.ok else "FAILED: " + "; ".join(result.problems)
    return f"  {title:<40} {result.variant:<9} {numbers}{arrived} [{status}]"


def run_all(
    variants: Sequence[Variant],
    benchmarks: Iterable[Benchmark],
    settings: Settings,
    endpoint: Endpoint,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[RunResult]:
    """Run every benchmark for every variant, ``settings.rounds`` times, interleaved."""
    selected = list(benchmarks)
    results: list[RunResult] = []
    for round_index in range(-settings.warmup_rounds, settings.rounds):
        order = _rotated(variants, round_index)
        name = "warm-up round" if round_index < 0 else (
            f"round {round_index + 1}/{settings.rounds}")
        log(f"{name} (order: {', '.join(v.name for v in order)})")
        for benchmark in selected:
            for variant in order:
                result = RunResult(benchmark.key, variant.name, round_index)
                try:
                    benchmark.run(variant, endpoint, settings, result)
                except Exception as exc:  # a bug in the harness itself; keep going
                    result.error = result.error or f"{type(exc).__name__}: {exc}"
                results.append(result)
                log(_progress(result, benchmark.title))
    return results
