"""The one request every in-process request benchmark sends, as a WSGI environ or ASGI scope,
and the timing of sequential calls through a WSGI app."""

from __future__ import annotations

import io
import time
from typing import Any

from .variants import REQUEST_HEADERS

__all__ = ["asgi_scope", "time_wsgi_requests", "wsgi_environ"]


def wsgi_environ(path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(),
    }
    for name, value in REQUEST_HEADERS.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def asgi_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *(
            (name.lower().encode(), value.encode()) for name, value in REQUEST_HEADERS.items()
        )],
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "state": {},
    }


def time_wsgi_requests(app: Any, count: int, path: str) -> float:
    """Seconds for ``count`` sequential requests through ``app``, each iterated and closed."""
    template = wsgi_environ(path)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    start = time.perf_counter()
    for _ in range(count):
        result = app(dict(template), start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - start
    if statuses.count("200 OK") != count:
        raise RuntimeError(f"expected {count} responses of 200, got {statuses[:3]}...")
    return elapsed
