"""The library under gevent's monkey-patching: delivery keeps working, contexts stay per greenlet.

gevent must patch the standard library before anything else is imported, so the app runs in a
child process (``apps/gevent_served.py``) that serves a Flask app with the PostHog extension on
``gevent.pywsgi`` and drives it with concurrent greenlets; the events go to a real local capture
endpoint in this process. Skipped where gevent is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY

pytest.importorskip("gevent")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "apps" / "gevent_served.py"
REQUESTS = 200


def run_gevent_app(sink: LocalSink, requests: int) -> tuple[dict[str, Any], str, float]:
    """Run the child to completion; return its JSON report, its stderr and its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTHOG_API_KEY": API_KEY,
           "POSTHOG_HOST": sink.url, "GEVENT_REQUESTS": str(requests)}
    started = time.monotonic()
    finished = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.splitlines()[-1]), finished.stderr, elapsed


def test_greenlets_keep_their_own_context_and_the_sender_delivers(sink: LocalSink) -> None:
    report, stderr, elapsed = run_gevent_app(sink, REQUESTS)

    assert report["threading_patched"], "gevent did not patch threading: nothing was tested"
    assert report["statuses"] == {"200": REQUESTS}
    # the sender (a greenlet under patching) delivered on its own, before exit and without flush()
    assert report["sent_before_exit"] == 2 * REQUESTS, report
    assert report["dropped_before_exit"] == 0
    assert stderr == "", f"the library or the server complained:\n{stderr}"

    for name in ("tagged", "served"):
        events = sink.events(event=name)
        numbers = sorted(e["properties"]["request_number"] for e in events)
        assert numbers == list(range(REQUESTS)), f"{name!r} events lost or duplicated"
        mixed_up = [e for e in events
                    if e["distinct_id"] != f"user-{e['properties']['request_number']}"
                    or e["properties"]["request_tag"] != f"tag-{e['properties']['request_number']}"
                    or e["properties"]["$request_path"]
                    != f"/tagged/{e['properties']['request_number']}"]
        assert mixed_up == [], f"{len(mixed_up)} {name!r} events carry another request's context"
    uuids = [e["uuid"] for e in sink.events()]
    assert len(set(uuids)) == len(uuids) == 2 * REQUESTS

    # the requests really ran interleaved: some captured while others were still in flight
    overlap = max(e["properties"]["in_flight"] for e in sink.events(event="served"))
    assert overlap > 1, "the greenlets never interleaved: the test proved nothing"
    print(f"gevent: {REQUESTS} requests in {report['requests_seconds']:.2f}s, delivered in "
          f"{report['delivery_seconds']:.2f}s, max {overlap} in flight, child {elapsed:.1f}s")
