"""A real ``redis-server`` on a free loopback port, started by the tests themselves.

The shared flag definitions cache and the Celery broker are tested against it. Without
``redis-server`` (or the ``redis`` package) those tests are skipped, except where
``POSTHOG_REQUIRE_REDIS=1`` (CI sets it): there they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import NoReturn

import pytest

REQUIRE_REDIS = os.environ.get("POSTHOG_REQUIRE_REDIS") == "1"


def redis_unavailable(reason: str) -> NoReturn:
    """Skip, or fail when POSTHOG_REQUIRE_REDIS=1 says the Redis tests must run."""
    if REQUIRE_REDIS:
        pytest.fail(f"{reason}; POSTHOG_REQUIRE_REDIS=1 requires the Redis tests to run")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` subprocess on a loopback port; stop and start it again at will."""

    def __init__(self, executable: str) -> None:
        self._executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self._executable, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 20 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def redis_server_executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        redis_unavailable("redis-server is not installed")
    try:
        import redis  # noqa: F401
    except ImportError:
        redis_unavailable("the redis package is not installed (the `redis` extra)")
    return executable
