"""Run as a script by ``tests/reliability/test_gevent.py``: the library under gevent.

Monkey-patches everything first, as gevent deployments do, then serves a Flask app with the
PostHog extension on ``gevent.pywsgi`` and fires ``GEVENT_REQUESTS`` concurrent requests at it
from greenlets, each with its own distinct id and tag. Odd requests sleep (``gevent.sleep``)
between tagging and capturing, so that the requests' greenlets interleave. Then it waits, without
calling ``flush()``, for the client's sender (a greenlet now) to deliver everything, and prints a
JSON report on stdout. Configured by ``POSTHOG_API_KEY`` and ``POSTHOG_HOST``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
from flask import Flask, request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

import posthog_integrations as posthog  # noqa: E402
from posthog_integrations.flask import PostHog  # noqa: E402

REQUESTS = int(os.environ.get("GEVENT_REQUESTS", "200"))
DELIVERY_TIMEOUT = 10.0

app = Flask(__name__)
extension = PostHog(app)
in_flight = 0


@app.get("/tagged/<int:number>")
def tagged(number: int) -> str:
    global in_flight
    in_flight += 1
    try:
        posthog.tag("request_tag", request.args["tag"])
        posthog.capture("tagged", properties={"request_number": number})
        if number % 2:
            gevent.sleep(0.002 * (number % 7))
        posthog.capture("served", properties={"request_number": number, "in_flight": in_flight})
    finally:
        in_flight -= 1
    return "ok"


def fetch(port: int, number: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", f"/tagged/{number}?tag=tag-{number}",
                           headers={"X-POSTHOG-DISTINCT-ID": f"user-{number}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_for_background_delivery(expected: int) -> float:
    """Seconds until the sender reported ``expected`` events sent; no flush() is called."""
    started = time.monotonic()
    while extension.client.stats().sent < expected:
        if time.monotonic() - started > DELIVERY_TIMEOUT:
            break
        gevent.sleep(0.02)
    return time.monotonic() - started


def main() -> None:
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    started = time.monotonic()
    greenlets = [gevent.spawn(fetch, server.server_port, n) for n in range(REQUESTS)]
    gevent.joinall(greenlets, timeout=30)
    requests_seconds = time.monotonic() - started
    delivery_seconds = wait_for_background_delivery(2 * REQUESTS)
    server.stop(timeout=2)
    stats = extension.client.stats()
    print(json.dumps({
        "threading_patched": monkey.is_module_patched("threading"),
        "statuses": Counter(str(g.value) if g.successful() else repr(g.exception)
                            for g in greenlets),
        "requests_seconds": requests_seconds,
        "delivery_seconds": delivery_seconds,
        "sent_before_exit": stats.sent,
        "dropped_before_exit": stats.dropped,
    }))


if __name__ == "__main__":
    main()
