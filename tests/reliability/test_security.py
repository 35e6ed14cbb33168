"""Security: secrets stay where they are.

- The API key appears in no log line (any level, the library's logger and the root logger), in
  no exception text and in no output of the ``check`` command, whatever goes wrong: 401, 500,
  connection refused, a hung server, bad configuration.
- Request bodies, cookies, the ``Authorization`` header, the query string and the user's email
  never reach an event by default (Django, Flask, Starlette; an event and an exception each).
- ``$ip`` exists only with ``trusted_proxies``, and a spoofed ``X-Forwarded-For`` never wins.
- ``X-POSTHOG-DISTINCT-ID`` is an analytics hint: it never logs anyone in (Django's
  ``request.user``, Flask-Login's ``current_user``), adds nothing to an ASGI scope, and never
  overrides the identity of a logged-in user (Django, Flask-Login, the ASGI ``identify`` hook):
  it only names anonymous visitors.

Every secret is made at random when the tests run, so none can appear in source lines that
exception events carry as context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import posthog_integrations as posthog
from posthog_integrations import Client, ConfigurationError
from posthog_integrations.__main__ import main
from posthog_integrations.asgi import PostHogMiddleware as ASGIMiddleware
from posthog_integrations.sink import LocalSink
from posthog_integrations.sink.app import ScriptedResponse
from posthog_integrations.testing import capture_events
from posthog_integrations.wsgi import PostHogMiddleware as WSGIMiddleware
from tests.conftest import API_KEY, delivered
from tests.e2e.servers import free_port

try:
    import django

    HAS_DJANGO = django.VERSION >= (4, 2)
except ImportError:
    HAS_DJANGO = False


def secret(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


KEY = f"phc_{uuid.uuid4().hex}"


@pytest.fixture
def library_logger() -> Iterator[logging.Logger]:
    """The library's logger without handlers, so that ``debug=True`` adds its own on the
    captured stderr; put back as it was afterwards."""
    logger = logging.getLogger("posthog_integrations")
    level, handlers = logger.level, list(logger.handlers)
    logger.handlers.clear()
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def places_holding(text: str, places: dict[str, str]) -> list[str]:
    return [name for name, content in places.items() if text in content]


# -- (a) the API key ----------------------------------------------------------------------------


def debug_client(host: str, errors: list[Exception], **options: Any) -> Client:
    return Client(KEY, host=host, debug=True, retry_base_delay=0.01,
                  on_error=lambda error, batch: errors.append(error), **options)


def send_one(client: Client, flush_timeout: float = 5) -> None:
    client.capture("key test", distinct_id="user-1")
    client.flush(timeout=flush_timeout)
    client.shutdown(timeout=1)


def configuration_errors() -> list[Exception]:
    """Ways to get the configuration wrong with the key at hand; each error is returned."""
    attempts: list[Callable[[], object]] = [
        lambda: Client(KEY, flush_at=0),
        lambda: Client(KEY, flsh_at=5),
        lambda: Client(KEY, host="us.i.posthog.com"),
        lambda: Client("https://eu.i.posthog.com", KEY),  # api_key and host swapped
        lambda: Client(KEY, timeout=math.inf),
        lambda: Client(KEY.encode()),
        lambda: WSGIMiddleware(lambda environ, start_response: [], client=KEY),
        lambda: ASGIMiddleware(lambda scope, receive, send: None, client=KEY),
    ]
    errors = []
    for attempt in attempts:
        with pytest.raises(ConfigurationError) as raised:
            attempt()
        errors.append(raised.value)
    flask_app = Flask(__name__)
    flask_app.config.update(POSTHOG_API_KEY=KEY, POSTHOG_HOST=KEY)
    from posthog_integrations.flask import PostHog

    with pytest.raises(ConfigurationError) as raised:
        PostHog(flask_app)
    errors.append(raised.value)
    return errors


def test_the_api_key_is_in_no_log_line_exception_or_output(
    sink: LocalSink, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, library_logger: logging.Logger
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger too: requests and urllib3 log there
    errors: list[Exception] = []
    sink.script(ScriptedResponse(status=401, body=json.dumps({"detail": f"bad {KEY}"}).encode()))
    send_one(debug_client(sink.url, errors, max_retries=0))
    sink.script(500, 500, ScriptedResponse(status=500, body=KEY.encode()))
    send_one(debug_client(sink.url, errors, max_retries=2))
    closed = f"http://127.0.0.1:{free_port()}"
    send_one(debug_client(closed, errors, max_retries=1))
    sink.script(ScriptedResponse(hang=True))
    send_one(debug_client(sink.url, errors, max_retries=0, timeout=0.3), flush_timeout=3)
    errors += configuration_errors()
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", closed)
    assert main(["check", "--timeout", "1"]) == 1
    monkeypatch.setenv("POSTHOG_HOST", sink.url)
    sink.script(ScriptedResponse(status=401, body=KEY.encode()))
    assert main(["check", "--timeout", "1"]) == 1
    output = capsys.readouterr()

    assert {r.api_key for r in sink.requests()} == {KEY}  # the key was sent, as it must be
    assert len(errors) == 4 + 9
    assert any("HTTP 401" in str(e) for e in errors)
    assert "retry 2" in caplog.text
    assert "PostHog check failed" in output.out
    assert "dropping a batch" in output.err  # debug=True's own handler wrote to stderr
    places = {
        "log text": caplog.text,
        **{f"log record {i} ({r.name})": r.getMessage() for i, r in enumerate(caplog.records)},
        **{f"error {i}": f"{e} {e!r} {e.args!r}" for i, e in enumerate(errors)},
        "stdout": output.out,
        "stderr": output.err,
    }
    assert places_holding(KEY, places) == []


@pytest.mark.skipif(not HAS_DJANGO, reason="Django 4.2 or newer is not installed")
def test_the_api_key_is_in_no_django_configuration_error() -> None:
    set_up_django()
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from posthog_integrations.django import conf

    texts = []
    for bad in ({"FLUSH_AT": "10"}, {"HOST": KEY}, {"TIMEOUT": -1}, {"MAX_QUEUE_SIZE": 0}):
        with override_settings(POSTHOG={"API_KEY": KEY, **bad}), \
                pytest.raises(ImproperlyConfigured) as raised:
            conf.load()
        texts.append(f"{raised.value} {raised.value!r}")
    assert places_holding(KEY, {f"error {i}": text for i, text in enumerate(texts)}) == []


# -- the apps for (b), (c), (d) -------------------------------------------------------------


class Secrets:
    """What a request may carry that must never reach PostHog, fresh for each test."""

    def __init__(self) -> None:
        self.body = secret("body")
        self.cookie = secret("cookie")
        self.bearer = secret("bearer")
        self.token = secret("token")
        self.email = f"{secret('ada')}@example.com"

    def strings(self) -> dict[str, str]:
        return {"body": self.body, "cookie": self.cookie, "bearer": self.bearer,
                "query token": self.token, "email": self.email}

    @property
    def query(self) -> str:
        return f"token={self.token}&email={self.email.replace('@', '%40')}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer}", "Cookie": f"remember={self.cookie}",
                "Content-Type": "application/x-www-form-urlencoded",
                "X-POSTHOG-SESSION-ID": "session-1"}

    @property
    def form(self) -> str:
        return f"password={self.body}&email={self.email}"


class CheckoutFailed(Exception):
    pass


def fail_checkout() -> None:
    raise CheckoutFailed("checkout failed")


def leaks(events: list[dict[str, Any]], secrets: dict[str, str]) -> list[str]:
    """The names of the secrets found anywhere in the events as sent."""
    serialized = json.dumps(events)
    return [name for name, value in secrets.items() if value in serialized]


def set_up_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.project.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


if HAS_DJANGO:
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path

    def django_private(request: HttpRequest) -> HttpResponse:
        seen = (request.body, request.COOKIES, request.META.get("HTTP_AUTHORIZATION"),
                request.GET, request.user.email)  # what a view may well read
        posthog.capture("private view", properties={"fields": len(seen)})
        fail_checkout()
        return HttpResponse()

    def django_whoami(request: HttpRequest) -> JsonResponse:
        posthog.capture("whoami")
        return JsonResponse({"authenticated": request.user.is_authenticated,
                             "username": request.user.get_username()})

    urlpatterns = [path("private/", django_private), path("whoami/", django_whoami)]


@pytest.fixture
def django_project(sink: LocalSink) -> Iterator[Client]:
    """The tests' Django project with this module's URLs; its default client sends to ``sink``."""
    pytest.importorskip("django", minversion="4.2")
    set_up_django()
    from django.test import override_settings

    client = posthog.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
    with override_settings(ROOT_URLCONF=__name__):
        yield client
    posthog.shutdown()


def django_user(name: str, *, admin: bool = False, email: str = "") -> Any:
    from django.contrib.auth.models import User

    username = f"{name}-{uuid.uuid4().hex[:8]}"
    if admin:
        return User.objects.create_superuser(username, email or f"{username}@example.com", "pw")
    return User.objects.create_user(username, email or f"{username}@example.com", "pw")


class FlaskUser:
    def __init__(self, user_id: str, email: str) -> None:
        self.id = user_id
        self.email = email
        self.is_authenticated = True
        self.is_active = True
        self.is_anonymous = False

    def get_id(self) -> str:
        return self.id


def flask_app(client: Client, users: dict[str, FlaskUser]) -> Flask:
    """A Flask app with Flask-Login: ``/login/<id>`` logs a user in (session cookie)."""
    flask_login = pytest.importorskip("flask_login")
    from posthog_integrations.flask import PostHog

    app = Flask(__name__)
    app.secret_key = secret("flask-session-key")
    manager = flask_login.LoginManager(app)
    manager.user_loader(users.get)

    @app.route("/login/<user_id>")
    def login(user_id: str) -> str:
        flask_login.login_user(users[user_id])
        return "in"

    @app.route("/private", methods=["POST"])
    def private() -> str:
        seen = (flask_request.get_data(), flask_request.cookies, flask_request.authorization,
                flask_request.args, flask_login.current_user.email)
        posthog.capture("private view", properties={"fields": len(seen)})
        fail_checkout()
        return ""

    @app.route("/whoami")
    def whoami() -> dict[str, Any]:
        posthog.capture("whoami")
        user = flask_login.current_user
        return {"authenticated": user.is_authenticated, "id": user.get_id()}

    PostHog(app, client=client)
    return app


async def starlette_private(request: Request) -> PlainTextResponse:
    seen = (await request.body(), request.cookies, request.headers.get("authorization"),
            request.query_params)
    posthog.capture("private view", properties={"fields": len(seen)})
    fail_checkout()
    return PlainTextResponse("")


# -- (b) privacy by default ---------------------------------------------------------------------


def assert_private(events: list[dict[str, Any]], secrets: dict[str, str]) -> None:
    names = sorted(event["event"] for event in events)
    assert names == ["$exception", "private view"]
    assert all(event["properties"]["$request_path"].startswith("/private") for event in events)
    assert leaks(events, secrets) == []


def test_django_sends_no_body_cookie_authorization_query_or_email(
    django_project: Client, sink: LocalSink
) -> None:
    from django.test import Client as Browser

    secrets = Secrets()
    user = django_user("ada", email=secrets.email)
    browser = Browser(raise_request_exception=False)
    browser.force_login(user)
    browser.cookies["remember"] = secrets.cookie
    session_cookie = browser.cookies["sessionid"].value
    response = browser.post(f"/private/?{secrets.query}", data=secrets.form,
                            content_type="application/x-www-form-urlencoded",
                            HTTP_AUTHORIZATION=f"Bearer {secrets.bearer}")
    assert response.status_code == 500
    events = delivered(django_project, sink)
    assert_private(events, {**secrets.strings(), "session cookie": session_cookie,
                            "username": user.username})
    assert {event["distinct_id"] for event in events} == {str(user.pk)}  # the key, nothing else


def test_flask_sends_no_body_cookie_authorization_query_or_email(
    sink: LocalSink, make_client: Callable[..., Client]
) -> None:
    secrets = Secrets()
    client = make_client()
    app = flask_app(client, {"7": FlaskUser("7", secrets.email)})
    browser = app.test_client()
    browser.get("/login/7")
    session_cookie = browser.get_cookie("session")
    assert session_cookie is not None
    browser.set_cookie("remember", secrets.cookie)
    response = browser.post(f"/private?{secrets.query}", data=secrets.form,
                            headers={"Authorization": f"Bearer {secrets.bearer}"})
    assert response.status_code == 500
    events = delivered(client, sink)
    assert_private(events, {**secrets.strings(), "session cookie": session_cookie.value})
    assert {event["distinct_id"] for event in events} == {"7"}


def test_starlette_sends_no_body_cookie_authorization_query_or_email(
    sink: LocalSink, make_client: Callable[..., Client]
) -> None:
    secrets = Secrets()
    client = make_client()
    app = Starlette(routes=[Route("/private", starlette_private, methods=["POST"])])
    app.add_middleware(ASGIMiddleware, client=client)
    with TestClient(app, raise_server_exceptions=False) as browser:
        response = browser.post(f"/private?{secrets.query}", content=secrets.form,
                                headers=secrets.headers)
    assert response.status_code == 500
    assert_private(delivered(client, sink), secrets.strings())


# -- (c) $ip only as far as proxies are trusted -------------------------------------------------

SPOOFED = "203.0.113.66"  # what a client writes into X-Forwarded-For itself
PEER = "198.51.100.7"
PROXY = "10.0.0.2"
REAL = "192.0.2.10"  # the address the trusted proxy saw and appended

# (trusted_proxies, the peer, X-Forwarded-For, the $ip expected)
IP_CASES = [
    (None, PEER, SPOOFED, None),
    (None, PROXY, f"{SPOOFED}, {REAL}", None),
    (0, PEER, SPOOFED, PEER),
    (["10.0.0.0/8"], PEER, SPOOFED, PEER),
    (["10.0.0.0/8"], PROXY, f"{SPOOFED}, {REAL}", REAL),
    (1, PROXY, f"{SPOOFED}, {REAL}", REAL),
    (["10.0.0.0/8"], PROXY, f"{SPOOFED}, not-an-ip, {REAL}, 10.0.0.9", REAL),
    (2, PROXY, SPOOFED, None),
]
IP_IDS = ["untrusted", "untrusted behind a proxy", "no proxy", "peer not a proxy",
          "trusted proxy network", "one proxy", "two trusted proxies, garbage",
          "fewer hops than proxies"]


def wsgi_ip_event(trusted: Any, peer: str, forwarded_for: str) -> dict[str, Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        posthog.capture("ip test")
        start_response("200 OK", [])
        return [b"ok"]

    options = {} if trusted is None else {"trusted_proxies": trusted}
    middleware = WSGIMiddleware(app, client=Client(API_KEY, host="http://127.0.0.1:9"),
                                **options)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "testserver",
               "SERVER_PORT": "80", "REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded_for}
    with capture_events() as events:
        middleware(environ, lambda *args: None)
    return events.one("ip test")


def asgi_ip_event(trusted: Any, peer: str, forwarded_for: str) -> dict[str, Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        posthog.capture("ip test")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    options = {} if trusted is None else {"trusted_proxies": trusted}
    middleware = ASGIMiddleware(app, client=Client(API_KEY, host="http://127.0.0.1:9"),
                                **options)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [
        (b"host", b"testserver"), (b"x-forwarded-for", forwarded_for.encode())],
        "client": (peer, 40000), "server": ("testserver", 80)}
    with capture_events() as events:
        asyncio.run(middleware(scope, receive, send))
    return events.one("ip test")


@pytest.mark.parametrize("ip_event", [wsgi_ip_event, asgi_ip_event], ids=["wsgi", "asgi"])
@pytest.mark.parametrize(("trusted", "peer", "forwarded_for", "expected"), IP_CASES, ids=IP_IDS)
def test_ip_only_as_far_as_proxies_are_trusted(
    ip_event: Callable[..., dict[str, Any]], trusted: Any, peer: str, forwarded_for: str,
    expected: str | None
) -> None:
    event = ip_event(trusted, peer, forwarded_for)
    assert event["properties"].get("$ip") == expected
    assert SPOOFED not in json.dumps(event)


def test_django_tags_no_ip_without_trust_and_the_peer_when_it_is_not_a_proxy(
    django_project: Client, sink: LocalSink
) -> None:
    from django.test import Client as Browser
    from django.test import override_settings

    Browser(REMOTE_ADDR=PEER).get("/whoami/", HTTP_X_FORWARDED_FOR=SPOOFED)
    trusted = {"API_KEY": API_KEY, "HOST": sink.url, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    with override_settings(POSTHOG=trusted):  # a new Browser loads the middleware again
        Browser(REMOTE_ADDR=PEER).get("/whoami/", HTTP_X_FORWARDED_FOR=SPOOFED)
        Browser(REMOTE_ADDR=PROXY).get("/whoami/", HTTP_X_FORWARDED_FOR=f"{SPOOFED}, {REAL}")
    events = delivered(django_project, sink, event="whoami")
    assert [event["properties"].get("$ip") for event in events] == [None, PEER, REAL]
    assert SPOOFED not in json.dumps(events)


# -- (d) the tracing header never authenticates, nor overrides who is logged in ---------------


def test_the_header_never_logs_anyone_in_to_django(django_project: Client,
                                                    sink: LocalSink) -> None:
    from django.test import Client as Browser

    admin = django_user("admin", admin=True)
    member = django_user("member")
    answers = []
    for claimed in (str(admin.pk), admin.username):
        anonymous = Browser()
        answers.append(anonymous.get("/whoami/", HTTP_X_POSTHOG_DISTINCT_ID=claimed).json())
        logged_in = Browser()
        logged_in.force_login(member)
        answers.append(logged_in.get("/whoami/", HTTP_X_POSTHOG_DISTINCT_ID=claimed).json())
    nobody = {"authenticated": False, "username": ""}
    the_member = {"authenticated": True, "username": member.username}
    assert answers == [nobody, the_member, nobody, the_member]
    events = delivered(django_project, sink, event="whoami")
    assert [e["distinct_id"] for e in events] == [str(admin.pk), str(member.pk),
                                                  admin.username, str(member.pk)]


def test_the_header_never_logs_anyone_in_with_flask_login(
    sink: LocalSink, make_client: Callable[..., Client]
) -> None:
    client = make_client()
    users = {"1": FlaskUser("1", "admin@example.com"), "2": FlaskUser("2", "member@example.com")}
    app = flask_app(client, users)
    anonymous = app.test_client()
    member = app.test_client()
    member.get("/login/2")
    headers = {"X-POSTHOG-DISTINCT-ID": "1"}  # the admin's id
    answers = [anonymous.get("/whoami", headers=headers).json,
               member.get("/whoami", headers=headers).json]
    assert answers == [{"authenticated": False, "id": None}, {"authenticated": True, "id": "2"}]
    assert [e["distinct_id"] for e in delivered(client, sink, event="whoami")] == ["1", "2"]


def test_the_header_adds_nothing_to_the_asgi_scope_nor_overrides_the_hook() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        posthog.capture("scope test")  # the request is read for its tags
        seen.append(dict(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    def identify(scope: dict[str, Any]) -> str | None:
        return "member" if (b"authorization", b"Bearer member-token") in scope["headers"] else None

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [
        (b"x-posthog-distinct-id", b"admin"), (b"x-posthog-session-id", b"s-1")]}
    token = (b"authorization", b"Bearer member-token")
    logged_in = {**scope, "headers": [*scope["headers"], token]}
    middleware = ASGIMiddleware(app, client=Client(API_KEY, host="http://127.0.0.1:9"),
                                identify=identify)
    with capture_events() as events:
        asyncio.run(middleware(dict(scope), receive, send))
        asyncio.run(middleware(dict(logged_in), receive, send))
    assert seen == [scope, logged_in]
    assert [event["distinct_id"] for event in events] == ["admin", "member"]
    assert {event["properties"]["$session_id"] for event in events} == {"s-1"}
