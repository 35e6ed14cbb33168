"""Events captured after the exit flush, by an atexit handler that runs after the library's own.

atexit runs handlers last registered first. A script that registers its handler before its first
capture (which registers the library's exit flush) has that handler run after the flush, so its
events must be sent then (inline, within what is left of the exit budget) or refused and counted.
Real subprocesses, real loopback capture endpoint in this process; both capture modes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY
from tests.reliability.conftest import assert_sent_in_mode

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import atexit, json, logging, sys
from posthog_integrations import Client

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
client = Client({key!r}, host={host!r}, timeout={timeout!r}, capture_mode={mode!r})

def report():  # registered first, so it runs last
    stats = client.stats()
    print(json.dumps({{"accepted": stats.accepted, "queued": stats.queued, "sent": stats.sent,
                      "dropped": dict(stats.dropped_by_reason)}}), flush=True)

def capture_late():  # registered before the first capture: runs after the library's flush
    client.capture("late", distinct_id="u")

atexit.register(report)
atexit.register(capture_late)
client.capture("first", distinct_id="u")
"""


def run_script(
    sink: LocalSink, mode: str, timeout: float = 15.0
) -> tuple[dict[str, object], str, float]:
    source = SCRIPT.format(key=API_KEY, host=sink.url, timeout=timeout, mode=mode)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True,
                          text=True, timeout=60, cwd=REPO_ROOT, check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert API_KEY not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr, elapsed


def test_an_event_captured_after_the_exit_flush_is_sent(sink: LocalSink, capture_mode: str) -> None:
    stats, _, _ = run_script(sink, capture_mode)

    assert sorted(event["event"] for event in sink.events()) == ["first", "late"]
    assert_sent_in_mode(sink.requests(), capture_mode)
    dropped = stats.pop("dropped")
    assert isinstance(dropped, dict)
    assert stats == {"accepted": 2, "queued": 0, "sent": 2}
    assert sum(dropped.values()) == 0


def test_late_events_are_counted_when_the_exit_budget_is_spent(
    sink: LocalSink, capture_mode: str
) -> None:
    """The endpoint hangs: the exit flush spends the 2 s budget, the late event is refused."""
    sink.script(*[ScriptedResponse(hang=True)] * 5)
    stats, stderr, elapsed = run_script(sink, capture_mode)

    assert sink.events() == []
    assert_sent_in_mode(sink.requests(), capture_mode)
    dropped = stats["dropped"]
    assert isinstance(dropped, dict)
    assert stats["accepted"] == 2
    assert stats["sent"] == 0
    assert dropped["shutdown"] == 2  # the event of the hung request, and the late one
    assert sum(dropped.values()) == 2
    assert "'late'" in stderr
    assert "after the exit flush" in stderr
    assert elapsed < 10  # the 2 s exit budget, interpreter start-up and a loaded machine
