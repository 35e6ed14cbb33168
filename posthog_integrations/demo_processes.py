"""The demo's child processes: free ports, waiting for a server to listen, stopping one so
that it flushes (and killing its whole session when it will not stop)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def stop(process: subprocess.Popen[str]) -> str:
    """Stop a shop's server and return what it printed.

    SIGTERM lets it flush its events. When it takes over ``STOP_TIMEOUT``, or on another
    Ctrl-C (which then goes on to stop the other servers), it is killed with its workers.
    """
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_session(process)
        output, _ = process.communicate()
    except KeyboardInterrupt:
        kill_session(process)
        process.wait()
        raise
    return output or ""


def kill_session(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` and every process of its session (a server's workers)."""
    killpg = getattr(os, "killpg", None)
    if killpg is None:  # Windows: no sessions
        process.kill()
        return
    with contextlib.suppress(ProcessLookupError):  # all gone already
        killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(process: subprocess.Popen[str], port: int, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the {name} server exited with {process.returncode}:\n{output}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the {name} server did not listen within {READY_TIMEOUT:g} s")
