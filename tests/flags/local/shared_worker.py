"""One worker process of the shared-cache tests: a poll loop over a :class:`SharedSource`.

Run as ``python -m tests.flags.local.shared_worker REDIS_URL SERVER_URL INTERVAL NAMESPACE
NAME OFFSET``. OFFSET seconds are slept once after the first refresh, so that the workers' polls
fall at different moments of the interval, as real workers' do. After every refresh it prints
one JSON line: its name, the outcome, whether it polled the server itself, and the flag keys it
currently holds. The library's log goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from posthog_integrations.feature_flags.local.shared import SharedSource
from posthog_integrations.feature_flags.local.source import Fetched
from tests.flags.local.definitions_server import http_fetch


def main(redis_url: str, server_url: str, interval: float, namespace: str, name: str,
         offset: float) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    plain = http_fetch(server_url, name)
    polled: list[str | None] = []

    def fetch(etag: str | None) -> Fetched:
        polled.append(etag)
        return plain(etag)

    source = SharedSource(redis_url, fetch, namespace=namespace, poll_interval=interval)
    keys: list[str] = []
    while True:
        polled.clear()
        result = source.refresh()
        if result.outcome == "updated" and result.data is not None:
            keys = [flag["key"] for flag in result.data["flags"]]
        elif result.outcome in ("unauthorized", "quota_limited"):
            keys = []
        print(json.dumps({"name": name, "outcome": result.outcome, "polled": bool(polled),
                          "keys": keys}), flush=True)
        time.sleep(interval + offset)
        offset = 0.0


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5],
         float(sys.argv[6]))
