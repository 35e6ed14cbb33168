"""The Flask extension in real apps: factory, blueprints, errors, streaming, several apps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from flask import Blueprint, Flask, abort, stream_with_context
from werkzeug.serving import make_server

import posthog_integrations as posthog
from posthog_integrations import ConfigurationError
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, delivered

IDENTITY = {"X-POSTHOG-DISTINCT-ID": "user-1", "X-POSTHOG-SESSION-ID": "session-1"}
_apps: list[Flask] = []


@pytest.fixture(autouse=True)
def _shut_down_app_clients() -> Iterator[None]:
    yield
    while _apps:
        _apps.pop().extensions["posthog"].client.shutdown(timeout=2)


class ViewFailed(Exception):
    pass


def create_app(sink: LocalSink, ext: PostHog | None = None,
               set_up_first: Callable[[Flask], object] | None = None, **config: Any) -> Flask:
    app = Flask(__name__)
    if set_up_first is not None:
        set_up_first(app)
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                       "POSTHOG_RETRY_BASE_DELAY": 0.02, **config})
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        posthog.capture("item viewed", properties={"item": item_id,
                                                   "thread": threading.get_ident()})
        return f"item {item_id}"

    @shop.route("/fail")
    def fail() -> str:
        try:
            {}["row"]
        except KeyError as cause:
            raise ViewFailed("view failed") from cause
        return ""

    @shop.route("/missing")
    def missing() -> str:
        abort(404)

    @shop.route("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[str]:
            yield "first\n"
            posthog.capture("mid stream")
            yield "second\n"

        return stream_with_context(chunks())

    @shop.route("/async")
    async def async_view() -> str:
        posthog.capture("async viewed")
        return "async"

    app.register_blueprint(shop)
    (ext or PostHog()).init_app(app)
    _apps.append(app)
    return app


def test_view_captures_carry_identity_and_route_to_the_apps_client(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext)
    response = app.test_client().get("/shop/items/7", headers=IDENTITY)
    assert response.text == "item 7"
    with app.app_context():
        [event] = delivered(ext.client, sink, event="item viewed")
    props = event["properties"]
    assert event["distinct_id"] == "user-1"
    assert props["$session_id"] == "session-1"
    assert (props["$route"], props["$request_path"]) == ("/shop/items/<int:item_id>",
                                                         "/shop/items/7")
    assert props["$current_url"] == "http://localhost/shop/items/7"


@pytest.mark.parametrize("testing", [False, True])
def test_an_unhandled_exception_is_captured_once(sink: LocalSink, testing: bool) -> None:
    ext = PostHog()
    app = create_app(sink, ext, TESTING=testing)
    client = app.test_client()
    if testing:  # Flask propagates: the WSGI layer and the signal both see it
        with pytest.raises(ViewFailed):
            client.get("/shop/fail", headers=IDENTITY)
    else:
        response = client.get("/shop/fail", headers=IDENTITY)
        assert response.status_code == 500
    [error] = delivered(ext.client, sink, event="$exception")
    props = error["properties"]
    assert error["distinct_id"] == "user-1"
    assert [e["type"] for e in props["$exception_list"]] == ["ViewFailed", "KeyError"]
    assert (props["$request_path"], props["$route"]) == ("/shop/fail", "/shop/fail")


def test_abort_404_is_not_an_exception(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext)
    assert app.test_client().get("/shop/missing").status_code == 404
    assert delivered(ext.client, sink, event="$exception") == []


def test_streamed_and_async_views_keep_the_identity(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext)
    client = app.test_client()
    assert client.get("/shop/stream", headers=IDENTITY).text == "first\nsecond\n"
    assert client.get("/shop/async", headers=IDENTITY).text == "async"
    events = delivered(ext.client, sink)
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("mid stream", "user-1"), ("async viewed", "user-1")]
    # Flask lets go of its request before the body is streamed; the route stays known.
    assert events[0]["properties"]["$route"] == "/shop/stream"


def test_a_page_view_carries_the_route(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext, POSTHOG_CAPTURE_PAGEVIEWS=True)
    assert app.test_client().get("/shop/items/3", headers=IDENTITY).text == "item 3"
    [pageview] = delivered(ext.client, sink, event="$pageview")
    assert pageview["distinct_id"] == "user-1"
    assert pageview["properties"]["$route"] == "/shop/items/<int:item_id>"


def test_two_apps_send_to_their_own_projects(sink: LocalSink) -> None:
    first = create_app(sink, POSTHOG_API_KEY="phc_first")
    second = create_app(sink, POSTHOG_API_KEY="phc_second")
    first.test_client().get("/shop/items/1")
    second.test_client().get("/shop/items/2")
    for app in (first, second):
        assert app.extensions["posthog"].client.flush(5)
    by_key = {r.api_key: [e["properties"]["item"] for e in r.events] for r in sink.requests()}
    assert by_key == {"phc_first": [1], "phc_second": [2]}


def test_64_concurrent_requests_on_a_threaded_server(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(
                lambda n: httpx.get(f"{url}/shop/items/{n}",
                                    headers={"X-POSTHOG-DISTINCT-ID": f"user-{n}"}).text,
                range(64)))
    finally:
        server.shutdown()
        thread.join()
    assert answers == [f"item {n}" for n in range(64)]
    with app.app_context():
        events = delivered(ext.client, sink)
    assert len(events) == 64
    assert all(e["distinct_id"] == f"user-{e['properties']['item']}" for e in events)
    assert len({e["properties"]["thread"] for e in events}) > 1


def test_init_app_twice_is_a_clear_error(sink: LocalSink) -> None:
    ext = PostHog()
    app = create_app(sink, ext)
    with pytest.raises(RuntimeError, match="already set up on the app"):
        ext.init_app(app)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"POSTHOG_FLUSH_AT": "many"}, r"app.config\['POSTHOG_FLUSH_AT'\] must be an integer"),
        ({"POSTHOG_CAPTURE_PAGEVIEWS": "yes"}, r"app.config\['POSTHOG_CAPTURE_PAGEVIEWS'\]"),
        ({"POSTHOG_IDENTIFY_USER": "no"}, r"app.config\['POSTHOG_IDENTIFY_USER'\]"),
    ],
)
def test_bad_config_raises_at_init_app_naming_the_key(sink: LocalSink, config: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_app(sink, **config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"POSTHOG_FLUSH_ATT": 5}, r"^unknown PostHog setting POSTHOG_FLUSH_ATT in app\.config; "
                                   r"did you mean POSTHOG_FLUSH_AT\?"),
        ({"POSTHOG_EXCLUDE_PATH": ["/health"]}, r"^unknown PostHog setting POSTHOG_EXCLUDE_PATH "
                                                r"in app\.config; did you mean "
                                                r"POSTHOG_EXCLUDE_PATHS\?"),
        ({"POSTHOG_IDENTIFY_USERS": False}, r"did you mean POSTHOG_IDENTIFY_USER\? \(every "
                                            r"POSTHOG_\* key of app\.config is read as a "
                                            r"PostHog setting\)$"),
        # nothing close: no guess, but the rule that makes it an error
        ({"POSTHOG_ACCESS_TOKEN": "phx_secret_value"},
         r"^unknown PostHog setting POSTHOG_ACCESS_TOKEN in app\.config \(every POSTHOG_\* "
         r"key of app\.config is read as a PostHog setting\)$"),
    ],
)
def test_an_unknown_posthog_key_fails_at_init_app_naming_it(sink: LocalSink,
                                                             config: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        create_app(sink, **config)
    assert "phx_secret_value" not in str(raised.value)
    assert API_KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flush_att": 5}, r"^unknown PostHog option 'flush_att'; did you mean 'flush_at'\?$"),
        ({"capture_pageview": True},
         r"^unknown PostHog option 'capture_pageview'; did you mean 'capture_pageviews'\?$"),
        ({"identify_users": False}, r"did you mean 'identify_user'\?$"),
        ({"FLUSH_AT": 1}, r"^unknown PostHog option 'FLUSH_AT'; did you mean 'flush_at'\?$"),
        ({"nothing_like_it": 1}, r"^unknown PostHog option 'nothing_like_it'$"),
    ],
)
def test_an_unknown_keyword_argument_fails_naming_it(sink: LocalSink, options: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_app(sink, PostHog(**options))
    app = Flask(__name__)
    app.config.update(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=sink.url)
    with pytest.raises(ConfigurationError, match=message):
        PostHog(app, **options)
    assert "posthog" not in app.extensions


def test_known_keys_and_keyword_arguments_configure_the_app(sink: LocalSink) -> None:
    ext = PostHog(flush_at=1, capture_pageviews=True, identify_user=False)
    app = create_app(sink, ext, POSTHOG_EXCLUDE_PATHS=["/health*"],
                     POSTHOG_SUPER_PROPERTIES={"deploy": "blue"})
    assert app.config["POSTHOG_FLUSH_AT"] == 1  # keyword arguments are defaults in app.config
    assert app.test_client().get("/shop/items/1", headers=IDENTITY).text == "item 1"
    with app.app_context():
        [event] = delivered(ext.client, sink, event="item viewed")
        [page_view] = delivered(ext.client, sink, event="$pageview")
    assert event["properties"]["deploy"] == "blue"
    assert page_view["properties"]["$route"] == "/shop/items/<int:item_id>"


@pytest.mark.parametrize("login_manager_first", [False, True])
def test_flask_login_identifies_requests_over_the_header(sink: LocalSink,
                                                         login_manager_first: bool) -> None:
    flask_login = pytest.importorskip("flask_login")

    class User(flask_login.UserMixin):  # type: ignore[name-defined,misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    ext = PostHog()
    manager = flask_login.LoginManager()
    if login_manager_first:
        app = create_app(sink, ext, manager.init_app, SECRET_KEY="tests")
    else:  # the extension cannot see it yet at init_app: looked for when a request captures
        app = create_app(sink, ext, SECRET_KEY="tests")
        manager.init_app(app)
    manager.request_loader(lambda request: User("42") if request.args.get("login") else None)
    client = app.test_client()
    client.get("/shop/items/1?login=1")
    client.get("/shop/items/2?login=1", headers=IDENTITY)
    client.get("/shop/items/3")
    with app.app_context():
        events = delivered(ext.client, sink, event="item viewed")
    assert events[0]["distinct_id"] == "42"
    assert events[1]["distinct_id"] == "42"  # the logged-in user wins over the header
    assert events[1]["properties"]["$session_id"] == "session-1"
    assert events[2]["properties"]["$process_person_profile"] is False


def test_an_app_without_flask_login_gets_no_per_request_hook(sink: LocalSink) -> None:
    app = create_app(sink)
    assert app.test_client().get("/shop/items/1").status_code == 200
    assert not any(app.before_request_funcs.values())


def test_the_check_command_reports_delivery(sink: LocalSink) -> None:
    app = create_app(sink)
    result = app.test_cli_runner().invoke(args=["posthog", "check"])
    assert result.exit_code == 0, result.output
    assert "PostHog check passed: delivered a test event" in result.output
    sink.script(401)
    result = app.test_cli_runner().invoke(args=["posthog", "check"])
    assert result.exit_code == 1
    assert "HTTP 401: the API key was rejected" in result.output


def test_a_client_that_is_not_a_client_is_refused_naming_the_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"PostHog\(client=\.\.\.\).*got str"):
        PostHog(client="phc_not_a_client")  # type: ignore[arg-type]
