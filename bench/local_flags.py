"""Local flag evaluation rows: the engine alone, and a request whose flags are all local.

- ``local_1_flag`` / ``local_50_flags``: one flag, and a 50-flag snapshot, of
  :func:`bench.local_evaluation.realistic_definitions` for one person; ours is
  ``evaluate_locally``, the official one its client with the same definitions injected and
  ``only_evaluate_locally=True``. Both answers are checked to agree before timing.
- ``local_flags_request``: a Starlette app called directly, in process, whose view reads 5
  flags that are all decided locally; each client loaded the definitions once, from a local
  sink, before timing, and the run fails if any ``/flags`` request is made while timing.
  Compared with the bare app, as ``flags_request`` is (there, each request waits for /flags).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Callable

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.engine import evaluate_locally

from .core import Benchmark, RunResult, Settings, samples_metrics
from .endpoint import Endpoint
from .flags import official_context_middleware, read_flags_ours
from .local_evaluation import ONE_FLAG, PERSON, official_client, realistic_definitions
from .variants import DISTINCT_ID, OursVariant, Variant, build_starlette_app
from .web import time_asgi_requests

if TYPE_CHECKING:
    from starlette.responses import PlainTextResponse

__all__ = ["LOCAL_BENCHMARKS"]

SECRET = "phs_bench_local_evaluation_secret"
REQUEST_FLAGS = ("rollout-3", "rollout-11", "experiment-0", "experiment-5",
                 "holdout-experiment")
"""Flags decided from the distinct id alone, as a request knows it."""


def _samples(call: Callable[[], Any], settings: Settings, block: int) -> list[float]:
    clock = time.perf_counter_ns
    calls = range(block)
    for _ in range(settings.warmup_blocks * block):
        call()
    samples = []
    for _ in range(settings.samples):
        start = clock()
        for _ in calls:
            call()
        samples.append((clock() - start) / block / 1000.0)
    return samples


def _values(results: dict[str, Any]) -> dict[str, Any]:
    return {key: getattr(result, "value", None) for key, result in results.items()}


def _evaluation(variant: Variant, result: RunResult, settings: Settings,
                keys: list[str] | None) -> None:
    result.sends_events = False
    data = realistic_definitions()
    definitions = parse_definitions(data)
    expected = _values(evaluate_locally(definitions, keys, **PERSON))
    if None in expected.values():
        raise RuntimeError(f"every bench flag should be decided locally: {expected}")
    client = None
    if variant.name == "ours":
        def call() -> Any:
            return evaluate_locally(definitions, keys, **PERSON)
        got = _values(call())
    else:
        client = official_client(data)
        warnings.simplefilter("ignore", DeprecationWarning)  # get_feature_flag is deprecated
        if keys is None:
            def call() -> Any:
                return client.get_all_flags_and_payloads(**PERSON, only_evaluate_locally=True)
            got = call()["featureFlags"]
        else:
            [key] = keys

            def call() -> Any:
                return client.get_feature_flag(
                    key, PERSON["distinct_id"], person_properties=PERSON["person_properties"],
                    groups=PERSON["groups"], group_properties=PERSON["group_properties"],
                    only_evaluate_locally=True, send_feature_flag_events=False)
            got = {key: call()}
    try:
        if got != expected:
            raise RuntimeError(f"{variant.name} disagrees on the bench definitions: {got}")
        # The official 50-flag snapshot costs hundreds of µs: fewer calls per sample.
        block = settings.block if keys is not None else max(settings.block // 4, 10)
        result.samples_us = _samples(call, settings, block)
        result.metrics = samples_metrics(result.samples_us)
    finally:
        if client is not None:
            client.shutdown()


def _local_1_flag(variant: Variant, endpoint: Endpoint, settings: Settings,
                  result: RunResult) -> None:
    _evaluation(variant, result, settings, [ONE_FLAG])


def _local_50_flags(variant: Variant, endpoint: Endpoint, settings: Settings,
                    result: RunResult) -> None:
    _evaluation(variant, result, settings, None)


def _request_definitions() -> dict[str, Any]:
    data = realistic_definitions()
    return {**data, "flags": [flag for flag in data["flags"] if flag["key"] in REQUEST_FLAGS]}


def _expected_request_values(data: dict[str, Any]) -> dict[str, Any]:
    results = evaluate_locally(parse_definitions(data), REQUEST_FLAGS, distinct_id=DISTINCT_ID,
                               groups={}, person_properties={}, group_properties={})
    values = _values(results)
    if None in values.values():
        raise RuntimeError(f"the request's flags should be decided locally: {values}")
    return values


def _answer(request: Any, values: dict[str, Any], expected: dict[str, Any]) -> PlainTextResponse:
    from starlette.responses import PlainTextResponse

    # A flag that was not decided as expected fails the run rather than timing a shortcut.
    status = 200 if values == expected else 500
    return PlainTextResponse(f"item {request.path_params['item_id']}", status_code=status)


def _ours_request_app(url: str, api_key: str, expected: dict[str, Any]) -> tuple[Any, Any]:
    from starlette.requests import Request

    import posthog_integrations

    client = posthog_integrations.Client(api_key, host=url, secret_key=SECRET,
                                         poll_interval=3600)
    if not client.load_flags(timeout=30):
        raise RuntimeError("the flag definitions did not load")

    async def item(request: Request) -> PlainTextResponse:
        snapshot = await read_flags_ours()
        values = {key: snapshot.get_flag(key) for key in REQUEST_FLAGS}
        return _answer(request, values, expected)

    return client, build_starlette_app(OursVariant(), client, item)


def _official_request_app(data: dict[str, Any], api_key: str,
                          expected: dict[str, Any]) -> tuple[Any, Any]:
    from starlette.requests import Request

    client = official_client(data)  # the definitions injected, as a poll would load them

    async def item(request: Request) -> PlainTextResponse:
        snapshot = client.evaluate_flags(only_evaluate_locally=True,
                                         flag_keys=list(REQUEST_FLAGS))
        values = {key: snapshot.get_flag(key) for key in REQUEST_FLAGS}
        return _answer(request, values, expected)

    return client, build_starlette_app(None, None, item,
                                       middleware_class=official_context_middleware(client))


def _timed(loop: asyncio.AbstractEventLoop, app: Any, count: int) -> float:
    return loop.run_until_complete(time_asgi_requests(app, count))


def _local_flags_request(variant: Variant, endpoint: Endpoint, settings: Settings,
                         result: RunResult) -> None:
    from posthog_integrations.sink import LocalSink

    result.sends_events = False
    data = _request_definitions()
    expected = _expected_request_values(data)
    api_key = f"phc_bench_{uuid.uuid4().hex[:10]}"
    loop = asyncio.new_event_loop()
    with LocalSink(definitions=data) as sink:
        if variant.name == "ours":
            client, wrapped = _ours_request_app(sink.url, api_key, expected)
        else:
            client, wrapped = _official_request_app(data, api_key, expected)
        try:
            bare = build_starlette_app(None, None)
            block = settings.request_block
            for app in (bare, wrapped):  # build Starlette's middleware stack, warm caches
                _timed(loop, app, block)
            before = sink.stats()["flags_requests"]
            times: dict[str, list[float]] = {"bare": [], "wrapped": []}
            for sample in range(settings.request_samples):
                order = [("bare", bare), ("wrapped", wrapped)]
                for name, app in order if sample % 2 else reversed(order):
                    times[name].append(_timed(loop, app, block) / block * 1e6)
            made = sink.stats()["flags_requests"] - before
            if made:
                raise RuntimeError(f"{made:,} /flags requests while timing: the flags were "
                                   "not all evaluated locally")
        finally:
            loop.close()
            client.shutdown()
    median = statistics.median
    result.samples_us = times["wrapped"]
    result.metrics = {
        **samples_metrics(times["wrapped"]),
        "bare_us": median(times["bare"]),
        "ratio_to_bare": median(times["wrapped"]) / median(times["bare"]),
    }


LOCAL_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("local_1_flag", "local", "local evaluation, one flag", _local_1_flag),
    Benchmark("local_50_flags", "local", "local evaluation, 50-flag snapshot", _local_50_flags),
    Benchmark("local_flags_request", "local", "Starlette request reading 5 local flags",
              _local_flags_request),
)
