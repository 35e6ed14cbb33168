"""Per-request cost of each library's Flask extension, against the same app with none.

- ``flask``: the app called through its WSGI interface, in process, one request after another;
  the request carries the tracing headers and its view captures nothing. Bare and wrapped apps
  are measured back to back in every run (see :func:`bench.core.paired_samples`).
- ``flask_server``: the app under a real gunicorn (one ``gthread`` worker with 4 threads),
  loaded over loopback with keep-alive connections, bare and wrapped back to back (see
  :mod:`bench.servers`).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from .calls import time_wsgi_requests
from .core import Benchmark, RunResult, Settings, paired_samples
from .endpoint import Endpoint
from .servers import REQUEST_PATH, compare_with_bare
from .variants import Variant, build_flask_app

__all__ = ["FLASK_BENCHMARKS"]

GUNICORN_THREADS = 4


def _requests(app: Any, count: int) -> float:
    return time_wsgi_requests(app, count, REQUEST_PATH)


def _flask(variant: Variant, endpoint: Endpoint, settings: Settings, result: RunResult) -> None:
    result.sends_events = False
    client = variant.make_client(endpoint.url, f"phc_bench_{uuid.uuid4().hex[:10]}")
    try:
        bare, wrapped = build_flask_app(None, None), build_flask_app(variant, client)
        block = max(settings.request_block // 4, 10)
        for app in (bare, wrapped):
            _requests(app, block * 3)
        paired_samples(bare, wrapped, _requests, settings.request_samples, block, result)
    finally:
        variant.shutdown(client, 5.0)


def _gunicorn_knows(setting: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(known.name == setting for known in KNOWN_SETTINGS)


def _gunicorn_command(port: int) -> list[str]:
    """gunicorn serving :mod:`bench.served_flask` on ``port``; no access log (its default)."""
    command = [sys.executable, "-m", "gunicorn", "bench.served_flask:app",
               "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
               "--threads", str(GUNICORN_THREADS), "--log-level", "warning"]
    if _gunicorn_knows("control_socket_disable"):
        command.append("--no-control-socket")  # else gunicorn opens ~/.gunicorn/gunicorn.ctl
    return command


def _flask_server(variant: Variant, endpoint: Endpoint, settings: Settings,
                  result: RunResult) -> None:
    compare_with_bare(_gunicorn_command, variant, endpoint, settings, result)


FLASK_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("flask", "flask", "Flask request through WSGI", _flask),
    Benchmark("flask_server", "flask", "gunicorn gthread + Flask over loopback", _flask_server),
)
