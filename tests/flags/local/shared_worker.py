"""One worker process of the shared-cache tests: the client's definitions poller over a
:class:`SharedSource`, as in a web server's worker.

Run as ``python -m tests.flags.local.shared_worker REDIS_URL SERVER_URL INTERVAL NAMESPACE
NAME OFFSET``. The worker first sleeps OFFSET seconds, so that the workers' polls fall at
different moments of the interval, as real workers' do. Then, every third of an interval, it
prints one JSON line: its name and the flag keys its poller currently holds (the server knows
who polled it from the ``X-Worker`` header). The library's log goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from posthog_integrations.core.options import ClientOptions
from posthog_integrations.feature_flags.local.poller import DefinitionsPoller
from posthog_integrations.feature_flags.local.shared import SharedSource
from posthog_integrations.feature_flags.local.source import DefinitionsSource
from tests.conftest import API_KEY
from tests.flags.local.definitions_server import http_fetch


def main(redis_url: str, server_url: str, interval: float, namespace: str, name: str,
         offset: float) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    fetch = http_fetch(server_url, name)

    def shared(options: ClientOptions) -> DefinitionsSource:
        return SharedSource(redis_url, fetch, namespace=namespace,
                            poll_interval=options.poll_interval)

    options = ClientOptions(api_key=API_KEY, host=server_url, secret_key="phx_worker",
                            poll_interval=interval)
    time.sleep(offset)
    poller = DefinitionsPoller(options, factory=shared)
    while True:
        current = poller.current()
        keys = sorted(current.flags) if current is not None else None
        print(json.dumps({"name": name, "keys": keys}), flush=True)
        time.sleep(interval / 3)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5],
         float(sys.argv[6]))
