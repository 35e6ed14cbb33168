"""A Flask app for the gunicorn tests, configured only by the environment.

``GET /work/<n>`` captures one "request served" event carrying the request number and the
worker's pid, and answers with that pid; ``?delay=<seconds>`` keeps the request busy first, so
that requests are in flight when the server is told to stop. ``GET /pids`` answers the worker's
and the master's pid.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, request

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog


def create_app(**posthog_options: Any) -> Flask:
    app = Flask(__name__)
    PostHog(app, **posthog_options)

    @app.get("/work/<int:number>")
    def work(number: int) -> str:
        time.sleep(float(request.args.get("delay", 0)))
        posthog.capture("request served",
                        properties={"request_number": number, "pid": os.getpid()})
        return str(os.getpid())

    @app.get("/pids")
    def pids() -> dict[str, int]:
        return {"worker": os.getpid(), "master": os.getppid()}

    return app


app = create_app()
