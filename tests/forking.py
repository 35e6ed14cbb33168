"""Waiting for a forked test child that reports by its exit status."""

from __future__ import annotations

import os
import signal
import time

import pytest


def child_exit_code(pid: int, *, timeout: float, hung: str) -> int:
    """The exit code of child ``pid``; kill it and fail the test with ``hung`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(hung)
        time.sleep(0.05)
