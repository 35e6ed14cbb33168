"""Feature flags: what attaching a snapshot costs an event, and a request that reads one flag.

The endpoint answers ``/flags`` from :data:`BENCH_FLAGS` (see :mod:`bench.endpoint`), so every
evaluation below is one real ``/flags`` request over loopback.

- ``capture_flags``: ``capture(flags=snapshot)`` with a 5-flag snapshot, and the same capture
  without flags, in alternating blocks on one client; the overhead is the median of the paired
  differences.
- ``flags_request``: a Starlette app called directly, in process, whose view evaluates the
  request's flags (one ``/flags`` request), reads one flag and captures one event with the
  snapshot attached; ours through our ASGI middleware, the official client through a
  hand-written middleware that sets its context from the same header. Compared with the bare
  app, as ``asgi_direct`` is.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

from .core import (
    FLUSH_TIMEOUT,
    Benchmark,
    RunResult,
    Settings,
    run_with_client,
    samples_metrics,
)
from .endpoint import BENCH_FLAGS, READ_FLAG, READ_FLAG_VALUE, Endpoint
from .variants import DISTINCT_ID, EVENT_NAME, Variant, build_starlette_app
from .web import time_asgi_requests

if TYPE_CHECKING:
    from starlette.responses import PlainTextResponse

__all__ = ["FLAGS_BENCHMARKS", "official_context_middleware", "read_flags_ours"]

FLAG_COUNT = len(BENCH_FLAGS["flags"])
FLAGS_EVENT = "flags bench event"


def _check_snapshot(snapshot: Any) -> None:
    keys = snapshot.keys  # a property of both snapshots; a method would do as well
    keys = set(keys() if callable(keys) else keys)
    if len(keys) != FLAG_COUNT:
        raise RuntimeError(f"expected a snapshot of {FLAG_COUNT} flags, got {sorted(keys)}")


def _capture_flags(variant: Variant, endpoint: Endpoint, settings: Settings,
                   result: RunResult) -> None:
    def body(client: Any) -> int:
        snapshot = client.evaluate_flags(DISTINCT_ID)
        _check_snapshot(snapshot)
        capture = variant.bind_capture(client)
        block = range(settings.block)
        clock = time.perf_counter_ns
        event, distinct_id = EVENT_NAME, DISTINCT_ID

        def plain() -> float:
            start = clock()
            for _ in block:
                capture(event, distinct_id=distinct_id)
            return (clock() - start) / settings.block / 1000.0

        def flagged() -> float:
            start = clock()
            for _ in block:
                capture(event, distinct_id=distinct_id, flags=snapshot)
            return (clock() - start) / settings.block / 1000.0

        for _ in range(settings.warmup_blocks):
            plain()
            flagged()
        with_flags: list[float] = []
        without: list[float] = []
        for sample in range(settings.samples):
            # Which goes first swaps every sample, as in paired_samples().
            if sample % 2:
                without.append(plain())
                with_flags.append(flagged())
            else:
                with_flags.append(flagged())
                without.append(plain())
        result.flush_drained = variant.flush(client, FLUSH_TIMEOUT)
        result.samples_us = with_flags
        bare = statistics.median(without)
        result.metrics = {
            **samples_metrics(with_flags),
            "bare_us": bare,
            "ratio_to_bare": statistics.median(with_flags) / bare,
            "overhead_us": statistics.median(w - p for w, p in zip(with_flags, without)),
        }
        return 2 * (settings.warmup_blocks + settings.samples) * settings.block

    run_with_client(variant, endpoint, result, body)


async def read_flags_ours() -> Any:
    """The request's flag snapshot, as an async view using posthog_integrations reads it: one
    ``/flags`` request per request, in a worker thread, for the identity the middleware bound to
    the request; the flags read then ride on the request's later events."""
    import posthog_integrations

    return await posthog_integrations.aflags()


def _ours_app(client: Any) -> Any:
    from starlette.requests import Request

    import posthog_integrations

    from .variants import OursVariant

    async def item(request: Request) -> PlainTextResponse:
        snapshot = await read_flags_ours()
        variant = snapshot.get_flag(READ_FLAG)
        posthog_integrations.capture(FLAGS_EVENT, flags=snapshot)
        return _answer(request, variant)

    return build_starlette_app(OursVariant(), client, item)


def _official_app(client: Any) -> Any:
    from starlette.requests import Request

    async def item(request: Request) -> PlainTextResponse:
        snapshot = client.evaluate_flags()
        variant = snapshot.get_flag(READ_FLAG)
        client.capture(FLAGS_EVENT, flags=snapshot)
        return _answer(request, variant)

    return build_starlette_app(None, None, item,
                               middleware_class=official_context_middleware(client))


def official_context_middleware(client: Any) -> Any:
    """An ASGI middleware giving each request an official context for ``client``, its distinct
    id from X-POSTHOG-DISTINCT-ID (what our middleware reads)."""
    import posthog

    class OfficialContextMiddleware:
        """The request's official context, its distinct id from X-POSTHOG-DISTINCT-ID."""

        def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            distinct_id = next((value.decode("latin-1") for name, value in scope["headers"]
                                if name == b"x-posthog-distinct-id"), None)
            with posthog.new_context(fresh=True, client=client):
                if distinct_id:
                    posthog.identify_context(distinct_id)
                await self.app(scope, receive, send)

    return OfficialContextMiddleware


def _answer(request: Any, variant: Any) -> PlainTextResponse:
    from starlette.responses import PlainTextResponse

    # A flag that did not come back from /flags fails the run rather than timing a shortcut.
    status = 200 if variant == READ_FLAG_VALUE else 500
    return PlainTextResponse(f"item {request.path_params['item_id']}", status_code=status)


def _timed(loop: asyncio.AbstractEventLoop, app: Any, count: int) -> tuple[float, float]:
    """Wall and CPU seconds of this process for ``count`` requests through ``app``."""
    cpu = time.process_time()
    wall = loop.run_until_complete(time_asgi_requests(app, count))
    return wall, time.process_time() - cpu


def _flags_request(variant: Variant, endpoint: Endpoint, settings: Settings,
                   result: RunResult) -> None:
    result.sends_events = False
    client = variant.make_client(endpoint.url, f"phc_bench_{uuid.uuid4().hex[:10]}")
    loop = asyncio.new_event_loop()
    try:
        bare = build_starlette_app(None, None)
        wrapped = (_ours_app if variant.name == "ours" else _official_app)(client)
        # Each request waits for one /flags answer: fewer requests per sample than asgi_direct.
        block = max(10, settings.request_block // 10)
        flags_before = endpoint.flags_requests()
        for app in (bare, wrapped):  # build Starlette's middleware stack, warm caches
            _timed(loop, app, block * 2)
        times: dict[str, list[float]] = {"bare": [], "bare_cpu": [], "wrapped": [],
                                         "wrapped_cpu": []}
        for sample in range(settings.request_samples):
            order = [("bare", bare), ("wrapped", wrapped)]
            for name, app in order if sample % 2 else reversed(order):
                wall, cpu = _timed(loop, app, block)
                times[name].append(wall / block * 1e6)
                times[f"{name}_cpu"].append(cpu / block * 1e6)
        requests = block * (2 + settings.request_samples)
        flags_requests = endpoint.flags_requests() - flags_before
        if flags_requests != requests:
            raise RuntimeError(f"expected one /flags request per request ({requests:,}), "
                               f"the endpoint answered {flags_requests:,}")
        variant.flush(client, FLUSH_TIMEOUT)
    finally:
        loop.close()
        variant.shutdown(client, 5.0)
    median = statistics.median
    result.samples_us = times["wrapped"]
    result.metrics = {
        **samples_metrics(times["wrapped"]),
        "bare_us": median(times["bare"]),
        "ratio_to_bare": median(times["wrapped"]) / median(times["bare"]),
        # The endpoint answers /flags in its own process: this is the app's own CPU per request.
        "cpu_us": median(times["wrapped_cpu"]),
        "bare_cpu_us": median(times["bare_cpu"]),
    }


FLAGS_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("capture_flags", "flags", f"capture(flags=), {FLAG_COUNT} flags", _capture_flags),
    Benchmark("flags_request", "flags", "Starlette request reading one flag", _flags_request),
)
