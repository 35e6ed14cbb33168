"""Start real servers (uvicorn, gunicorn, ...) as child processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(arguments: list[str], port: int, env: Mapping[str, str],
          stop_signal: int = signal.SIGTERM, ready_timeout: float = 20.0,
          output: list[str] | None = None) -> Iterator[str]:
    """Run ``python -m <arguments>`` until the block ends; yield its base URL.

    On exit the server gets ``stop_signal`` and must stop within 15 s; what it printed (stdout
    and stderr) is then appended to ``output``, when given.
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = subprocess.Popen([sys.executable, "-m", *arguments], cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_listening(process, port, ready_timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            printed, _ = process.communicate(timeout=15)
            if output is not None:
                output.append(printed)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"the server did not stop in time:\n{output}") from None


def _wait_until_listening(process: subprocess.Popen[str], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the server exited with {process.returncode}:\n{output}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the server did not listen on port {port} within {timeout:g}s")
