"""A small Flask shop sending product analytics and errors to PostHog.

Run it: ``flask --app shop run`` (or any WSGI server: ``gunicorn 'shop:create_app()'``).
Without ``POSTHOG_HOST`` it sends to the local capture endpoint (``posthog-integrations sink``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request, stream_with_context

import posthog_integrations as posthog
from posthog_integrations.flask import PostHog

LOCAL_ENDPOINT = "http://127.0.0.1:8010"
posthog_ext = PostHog()


def create_app(**config: Any) -> Flask:
    app = Flask(__name__)
    host = os.environ.get("POSTHOG_HOST") or LOCAL_ENDPOINT
    app.config.update(
        POSTHOG_HOST=host,
        # The local endpoint takes any key; anywhere else the key must come from the environment.
        POSTHOG_API_KEY=os.environ.get("POSTHOG_API_KEY") or (
            "phc_local" if host == LOCAL_ENDPOINT else None),
        POSTHOG_CAPTURE_PAGEVIEWS=True,
    )
    app.config.update(config)
    posthog_ext.init_app(app)

    @app.get("/")
    def home() -> str:
        return "<h1>Shop</h1>"

    @app.post("/signup")
    def signup() -> dict[str, str]:
        user_id = f"user-{request.form['username']}"
        posthog.identify_context(user_id)  # this request's events now belong to the new user
        posthog.capture("signed up", properties={"plan": request.form.get("plan", "free")})
        return {"user_id": user_id}

    @app.post("/cart/<int:item_id>")
    def add_to_cart(item_id: int) -> dict[str, Any]:
        # Evaluated once per request; the variant then rides on this request's later events.
        layout = posthog.flags().get_flag("checkout-layout")
        posthog.capture("item added", properties={"item_id": item_id})
        return {"item_id": item_id, "checkout_layout": layout}

    @app.get("/checkout")
    def checkout() -> str:
        try:
            raise ConnectionError("payment service unreachable")
        except ConnectionError as cause:
            raise RuntimeError("checkout failed") from cause

    @app.get("/report")
    def report() -> Response:
        def rows() -> Iterator[str]:
            for number in range(3):
                yield f"row {number}\n"
            posthog.capture("report streamed", properties={"rows": 3})

        return Response(stream_with_context(rows()), mimetype="text/plain")

    return app
