"""The Flask app of ``flask_traffic``, imported by the gunicorn master under ``--preload``.

The client is built here, before gunicorn forks its workers, and captures one "master booted"
event at import. A 30 s flush interval keeps that event waiting in the master's queue (with the
sender thread already running) when the workers are forked: each worker must start with an
empty queue, and only the master may deliver it, once, when it exits.
"""

from __future__ import annotations

import os

from tests.reliability.apps.flask_traffic import create_app

app = create_app(flush_interval=30.0)
app.extensions["posthog"].client.capture(
    "master booted", distinct_id="gunicorn-master", properties={"pid": os.getpid()}
)
