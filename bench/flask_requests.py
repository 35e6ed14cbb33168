"""Per-request cost of each library's Flask extension, against the same app with none.

The app is called through its WSGI interface, in process, one request after another; the
request carries the tracing headers and its view captures nothing. Bare and wrapped apps are
measured back to back in every run (see :func:`bench.core.paired_samples`).
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from .calls import time_wsgi_requests
from .core import Benchmark, RunResult, Settings, paired_samples
from .endpoint import Endpoint
from .variants import Variant

__all__ = ["FLASK_BENCHMARKS"]

PATH = "/items/42"


def _app(setup: Callable[[Any], None] | None) -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return f"item {item_id}"

    if setup is not None:
        setup(app)
    return app


def _requests(app: Any, count: int) -> float:
    return time_wsgi_requests(app, count, PATH)


def _flask(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
    result.sends_events = False
    client = variant.make_client(endpoint.url, f"phc_bench_{uuid.uuid4().hex[:10]}")
    if variant.name == "ours":
        from posthog_integrations.flask import PostHog

        def setup(app: Any) -> None:
            PostHog(app, client=client)
    else:
        from posthog.integrations.flask import PosthogFlaskIntegration

        def setup(app: Any) -> None:
            PosthogFlaskIntegration(app, client=client)
    try:
        bare, wrapped = _app(None), _app(setup)
        block = max(settings.request_block // 4, 10)
        for app in (bare, wrapped):
            _requests(app, block * 3)
        paired_samples(bare, wrapped, _requests, settings.request_samples, block, result)
    finally:
        variant.shutdown(client, 5.0)


FLASK_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("flask", "flask", "Flask request through WSGI", _flask),
)
