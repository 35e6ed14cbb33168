"""The WSGI middleware with raw WSGI apps, werkzeug's test client and a threaded server."""

from __future__ import annotations

import contextvars
import io
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from wsgiref.util import FileWrapper

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client as WerkzeugClient

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from posthog_integrations.wsgi import PostHogMiddleware
from tests.conftest import ClientFactory, delivered

StartResponse = Callable[..., Any]
IDENTITY = {"X-POSTHOG-DISTINCT-ID": "user-1", "X-POSTHOG-SESSION-ID": "session-1"}


class Boom(Exception):
    pass


class Body:
    """A response iterable that captures while it is iterated and closed."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"first\n"
        posthog.capture("mid stream")
        yield b"second\n"
        if self.fail:
            raise Boom("stream broke")

    def close(self) -> None:
        self.closed = True
        posthog.capture("closed")


@pytest.fixture
def client(make_client: ClientFactory) -> Client:
    return make_client()


def streaming_app(body: Body) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    return app


def test_the_context_covers_iteration_and_close(client: Client, sink: LocalSink) -> None:
    body = Body()
    app = PostHogMiddleware(streaming_app(body), client=client)
    response = WerkzeugClient(app).get("/stream", headers=IDENTITY, buffered=True)
    assert response.get_data() == b"first\nsecond\n"
    assert body.closed
    events = delivered(client, sink)
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("mid stream", "user-1"), ("closed", "user-1")]
    assert all(e["properties"]["$request_path"] == "/stream" for e in events)
    assert posthog.get_tags() == {}  # nothing left behind on this thread


def test_the_body_keeps_what_the_call_tagged_and_the_server_sees_none_of_it(
        client: Client, sink: LocalSink) -> None:
    app_variable: contextvars.ContextVar[str] = contextvars.ContextVar("app", default="unset")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        posthog.tag("plan", "pro")
        posthog.identify_context("user-2")
        app_variable.set("set by the app")
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            posthog.capture("streamed", properties={"seen": app_variable.get()})
            yield b"done"

        return body()

    response = WerkzeugClient(PostHogMiddleware(app, client=client)).get(
        "/", headers=IDENTITY, buffered=True)
    assert response.get_data() == b"done"
    [event] = delivered(client, sink)
    assert event["distinct_id"] == "user-2"
    assert event["properties"]["plan"] == "pro"
    assert event["properties"]["seen"] == "set by the app"
    assert app_variable.get() == "unset"  # the app ran in a context of its own
    assert posthog.get_tags() == {}


def test_an_error_while_iterating_is_captured_once_and_reraised(client: Client,
                                                                sink: LocalSink) -> None:
    body = Body(fail=True)
    app = PostHogMiddleware(streaming_app(body), client=client)
    with pytest.raises(Boom):
        WerkzeugClient(app).get("/stream", headers=IDENTITY, buffered=True)
    [error] = delivered(client, sink, event="$exception")
    assert error["distinct_id"] == "user-1"
    assert error["properties"]["$response_status_code"] == 200
    assert error["properties"]["$exception_source"] == "wsgi.middleware"
    assert body.closed


def test_an_error_in_the_app_keeps_its_cause(client: Client, sink: LocalSink) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            {}["missing"]
        except KeyError as cause:
            raise Boom("view failed") from cause
        return []

    with pytest.raises(Boom) as raised:
        WerkzeugClient(PostHogMiddleware(app, client=client)).get("/", headers=IDENTITY)
    assert isinstance(raised.value.__cause__, KeyError)
    [error] = delivered(client, sink, event="$exception")
    assert [e["type"] for e in error["properties"]["$exception_list"]] == ["Boom", "KeyError"]
    assert "$response_status_code" not in error["properties"]


def test_special_responses_are_returned_untouched(client: Client) -> None:
    file_response = FileWrapper(io.BytesIO(b"data"))
    sentinel = object()
    listed = [b"a", b"b"]
    results: dict[str, Any] = {"/file": file_response, "/sentinel": sentinel, "/list": listed}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        return results[environ["PATH_INFO"]]

    wrapped = PostHogMiddleware(app, client=client)
    for path, expected in results.items():
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.file_wrapper": FileWrapper}
        assert wrapped(environ, lambda *args: None) is expected


def test_applied_twice_the_inner_instance_passes_through(make_client: ClientFactory,
                                                         sink: LocalSink) -> None:
    outer_client, inner_client = make_client(), make_client(api_key="phc_inner")
    app = PostHogMiddleware(PostHogMiddleware(streaming_app(Body()), client=inner_client),
                            client=outer_client)
    WerkzeugClient(app).get("/", headers=IDENTITY, buffered=True)
    assert inner_client.flush(5)
    assert len(delivered(outer_client, sink)) == 2
    assert {r.api_key for r in sink.requests()} == {outer_client.options.api_key}


def test_64_concurrent_requests_on_a_threaded_server(make_client: ClientFactory,
                                                     sink: LocalSink) -> None:
    client = make_client()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        number = environ["HTTP_X_REQUEST"]
        time.sleep(random.random() / 100)
        posthog.tag("request", number)
        time.sleep(random.random() / 100)
        posthog.capture("handled", properties={"expected": number,
                                               "thread": threading.get_ident()})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [number.encode()]

    server = make_server("127.0.0.1", 0, PostHogMiddleware(app, client=client), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"

    def request(number: int) -> str:
        headers = {"X-POSTHOG-DISTINCT-ID": f"user-{number}", "X-Request": str(number)}
        return httpx.get(f"{url}/r/{number}", headers=headers).text

    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(request, range(64)))
    finally:
        server.shutdown()
        thread.join()
    assert answers == [str(n) for n in range(64)]
    events = delivered(client, sink)
    assert len(events) == 64
    assert len({e["properties"]["thread"] for e in events}) > 1
    for event in events:
        number = event["properties"]["expected"]
        assert event["distinct_id"] == f"user-{number}"
        assert event["properties"]["request"] == number
        assert event["properties"]["$request_path"] == f"/r/{number}"
        assert event["properties"]["$current_url"] == f"{url}/r/{number}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"captur_pageviews": True}, r"^unknown PostHogMiddleware option 'captur_pageviews'; "
                                     r"did you mean 'capture_pageviews'\?$"),
        ({"Exclude_Paths": ["/health"]}, r"did you mean 'exclude_paths'\?$"),
        ({"clients": None}, r"did you mean 'client'\?$"),
    ],
)
def test_an_unknown_option_names_the_closest_known_one(options: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(posthog.ConfigurationError, match=message):
        PostHogMiddleware(lambda environ, start_response: [b""], **options)
