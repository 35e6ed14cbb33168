"""The exception spec for each web and task adapter, driven through real apps."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import pytest
from celery import Celery
from flask import Flask, stream_with_context
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient

from posthog_integrations.asgi import PostHogMiddleware as ASGIMiddleware
from posthog_integrations.celery import PostHogCelery
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from posthog_integrations.wsgi import PostHogMiddleware as WSGIMiddleware
from tests.conftest import API_KEY, ClientFactory, delivered
from tests.exceptions.spec_rows import ASGI, CELERY, FLASK, WSGI, Row, assert_row

FORGED = {"$exception_source": "forged", "$exception_level": "debug"}


class Failed(Exception):
    pass


def fail() -> None:
    """Fails with an explicit cause, as views often do."""
    try:
        {}["row"]
    except KeyError as cause:
        raise Failed("view failed") from cause


def assert_failed_row(event: dict[str, Any], row: Row) -> None:
    assert_row(event, row)
    assert [(e["type"], e["mechanism"].get("source"))
            for e in event["properties"]["$exception_list"]] == [
        ("Failed", None), ("KeyError", "cause")]


@pytest.mark.parametrize("testing", [False, True])
def test_flask_got_request_exception(sink: LocalSink, testing: bool) -> None:
    app = Flask(__name__)
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url, "TESTING": testing})
    ext = PostHog(app)

    @app.route("/fail")
    def failing_view() -> str:
        fail()
        return ""

    try:
        if testing:  # Flask propagates the exception after its signal
            with pytest.raises(Failed):
                app.test_client().get("/fail")
        else:
            assert app.test_client().get("/fail").status_code == 500
        [event] = delivered(ext.client, sink, event="$exception")
    finally:
        ext.client.shutdown(timeout=2)
    assert_failed_row(event, FLASK)


def test_flask_failure_after_the_request_is_caught_by_the_wsgi_layer(sink: LocalSink) -> None:
    app = Flask(__name__)
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url})
    ext = PostHog(app)

    @app.route("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[str]:
            yield "first\n"
            fail()

        return stream_with_context(chunks())

    try:
        with pytest.raises(Failed):
            app.test_client().get("/stream", buffered=True)
        [event] = delivered(ext.client, sink, event="$exception")
    finally:
        ext.client.shutdown(timeout=2)
    assert_failed_row(event, WSGI)


def test_asgi_middleware(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client()

    async def failing_view(request: Request) -> None:
        fail()

    app = Starlette(routes=[Route("/fail", failing_view)],
                    middleware=[Middleware(ASGIMiddleware, client=client)])
    with TestClient(app) as test_client, pytest.raises(Failed):
        test_client.get("/fail")
    [event] = delivered(client, sink, event="$exception")
    assert_failed_row(event, ASGI)


def test_wsgi_middleware(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fail()
        return [b""]

    with pytest.raises(Failed):
        WerkzeugClient(WSGIMiddleware(app, client=client)).get("/fail")
    [event] = delivered(client, sink, event="$exception")
    assert_failed_row(event, WSGI)


def test_celery_task_failure(make_client: ClientFactory, sink: LocalSink) -> None:
    client = make_client()
    app = Celery(f"spec{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    PostHogCelery(app, client=client)

    @app.task(shared=False, name="spec.fail")
    def failing_task() -> None:
        fail()

    try:
        failing_task.delay()
    finally:
        app.close()
    [event] = delivered(client, sink, event="$exception")
    assert_failed_row(event, CELERY)


def test_a_context_tag_never_overrides_the_adapters_metadata(make_client: ClientFactory,
                                                             sink: LocalSink) -> None:
    client = make_client()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from posthog_integrations import tag

        for name, value in FORGED.items():
            tag(name, value)
        fail()
        return [b""]

    with pytest.raises(Failed):
        WerkzeugClient(WSGIMiddleware(app, client=client)).get("/fail")
    [event] = delivered(client, sink, event="$exception")
    assert_failed_row(event, WSGI)
