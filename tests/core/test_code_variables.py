"""Local variables on $exception frames: opt-in, masked, bounded, never failing the capture."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from posthog_integrations import ConfigurationError, new_context
from posthog_integrations.core import code_variables
from posthog_integrations.core.code_variables import MASKED
from posthog_integrations.flask import PostHog
from posthog_integrations.sink import LocalSink
from posthog_integrations.testing import capture_events
from tests.conftest import API_KEY, ClientFactory, delivered


class CheckoutFailed(Exception):
    pass


def checkout(order_id: int, items: list[str]) -> None:
    total = 3
    note = "gift"
    raise CheckoutFailed(f"order {order_id} ({total} {note}, {len(items)} items)")


def frames_of(event: dict[str, Any], entry: int = 0) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = event["properties"]["$exception_list"][entry]["stacktrace"][
        "frames"]
    return frames


def crash_frame(event: dict[str, Any]) -> dict[str, Any]:
    return frames_of(event)[-1]


def captured(client_factory: ClientFactory, sink: LocalSink, run: Any,
             **options: Any) -> dict[str, Any]:
    """Call ``run``, capture what it raises, return the delivered $exception."""
    client = client_factory(**options)
    try:
        run()
    except BaseException as error:  # whatever run() raises is the subject
        client.capture_exception(error)
    [event] = delivered(client, sink, event="$exception")
    return event


def test_off_by_default(sink: LocalSink, make_client: ClientFactory) -> None:
    event = captured(make_client, sink, lambda: checkout(7, ["tea"]))
    assert all("code_variables" not in frame for frame in frames_of(event))


def test_in_app_frames_carry_their_locals(sink: LocalSink, make_client: ClientFactory) -> None:
    def caller() -> None:
        basket = ["tea", "scones"]
        checkout(7, basket)

    event = captured(make_client, sink, caller, capture_exception_code_variables=True)
    frames = frames_of(event)
    assert crash_frame(event)["function"] == "checkout"
    assert crash_frame(event)["code_variables"] == {
        "order_id": 7, "items": ["tea", "scones"], "total": 3, "note": "gift",
    }
    [calling] = [frame for frame in frames if frame["function"].endswith("caller")]
    assert calling["code_variables"] == {"basket": ["tea", "scones"]}


def fail_with_secrets() -> None:
    password = "hunter2"
    api_key = "abc"
    user_session_id = "s-1"
    csrfToken = "c-1"  # a camel-case name is masked as well
    settings = {"timeout": 3, "Authorization": "Basic Zm9vOmJhcg==",
                "nested": {"db_password": "pw", "port": 5432}}
    database_url = "postgres://shop:s3cr3t-pw@db.internal:5432/shop"
    sentry_like = "https://0123456789abcdef0123456789abcdef@errors.example.com/12"
    header = "Bearer 9f8e7d6c5b4a"
    jwt_value = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXBhcnQ"
    posthog_key = "phc_Abc123Def456Ghi789Jkl"
    generated = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY"
    query = "select * from orders where token='x9Y8z7' and id=3"
    order_uuid = "123e4567-e89b-12d3-a456-426614174000"
    handler_name = "user_profile_settings_controller_v2"
    raise RuntimeError(str(len([password, api_key, user_session_id, csrfToken, settings,
                                database_url, sentry_like, header, jwt_value, posthog_key,
                                generated, query, order_uuid, handler_name])))


def test_masks_by_name_url_credentials_and_key_like_values(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    event = captured(make_client, sink, fail_with_secrets, capture_exception_code_variables=True)
    variables = crash_frame(event)["code_variables"]
    for name in ("password", "api_key", "user_session_id", "csrfToken"):
        assert variables[name] == MASKED, name
    assert variables["settings"] == {"timeout": 3, "Authorization": MASKED,
                                     "nested": {"db_password": MASKED, "port": 5432}}
    assert variables["database_url"] == f"postgres://shop:{MASKED}@db.internal:5432/shop"
    assert variables["sentry_like"] == f"https://{MASKED}@errors.example.com/12"
    assert variables["header"] == f"Bearer {MASKED}"
    for name in ("jwt_value", "posthog_key", "generated"):
        assert variables[name] == MASKED, name
    assert variables["query"] == f"select * from orders where token='{MASKED}' and id=3"
    # ids and identifiers are not secrets
    assert variables["order_uuid"] == "123e4567-e89b-12d3-a456-426614174000"
    assert variables["handler_name"] == "user_profile_settings_controller_v2"
    text = json.dumps(variables)  # the source lines around the crash quote them, of course
    for secret in ("hunter2", "s3cr3t-pw", "9f8e7d6c5b4a", "Abc123Def456", "x9Y8z7",
                   "0123456789abcdef", "Zm9vOmJhcg"):
        assert secret not in text, secret


@dataclasses.dataclass
class Credentials:
    user: str
    password: str


def fail_with_objects() -> None:
    login = Credentials("ada", "correct-horse")
    raise ValueError(login.user)


def test_masks_secrets_inside_an_objects_repr(sink: LocalSink, make_client: ClientFactory) -> None:
    event = crash_frame(captured(make_client, sink, fail_with_objects,
                                 capture_exception_code_variables=True))
    assert event["code_variables"]["login"] == (
        f"Credentials(user='ada', password='{MASKED}')")


def fail_with_big_values() -> None:
    long_text = "x" * 5000
    nested = [[[["deep"]]]]
    wide = list(range(100))
    huge = {f"k{i}": "v" * 300 for i in range(15)}
    big_number = 10 ** 30
    not_a_number = float("nan")
    raise ValueError(len(long_text) + len(nested) + len(wide) + len(huge) + big_number
                     + int(not_a_number == 0))


def test_values_are_truncated_and_depth_bounded(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    variables = crash_frame(captured(make_client, sink, fail_with_big_values,
                                     capture_exception_code_variables=True))["code_variables"]
    assert len(variables["long_text"]) == code_variables.MAX_VALUE_CHARS
    assert variables["long_text"].endswith("...")
    assert variables["nested"] == [[["<list of 1 items>"]]]
    assert variables["wide"][:20] == list(range(20))
    assert variables["wide"][20] == "... 80 more"
    assert isinstance(variables["huge"], str)  # its JSON passed the bound: cut as text
    assert len(variables["huge"]) == code_variables.MAX_VALUE_CHARS
    assert variables["big_number"] == str(10 ** 30)
    assert variables["not_a_number"] == "nan"


@pytest.fixture
def app_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path


def load_module(directory: pathlib.Path, name: str, source: str) -> Any:
    """A module written to ``directory`` (the project root of the tests that use it)."""
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_frame_keeps_its_first_50_variables(
    sink: LocalSink, make_client: ClientFactory, app_dir: pathlib.Path
) -> None:
    body = "".join(f"    v{i:02d} = {i}\n" for i in range(60))
    module = load_module(app_dir, "many_locals", f"def fail():\n{body}    raise KeyError(1)\n")
    event = captured(make_client, sink, module.fail, capture_exception_code_variables=True,
                     project_root=str(app_dir))
    variables = crash_frame(event)["code_variables"]
    assert list(variables) == [f"v{i:02d}" for i in range(50)]


def test_one_event_carries_at_most_64_kib_of_variables_innermost_first(
    sink: LocalSink, make_client: ClientFactory, app_dir: pathlib.Path
) -> None:
    # 50 variables of ~1 KiB a frame: about one frame fits the event's budget
    body = "".join(f"    v{i:02d} = 'abc ' * 250\n" for i in range(50))
    source = (f"def fail(depth):\n{body}    if depth:\n        fail(depth - 1)\n"
              "    raise KeyError(depth)\n")
    module = load_module(app_dir, "deep_locals", source)
    event = captured(make_client, sink, lambda: module.fail(4),
                     capture_exception_code_variables=True, project_root=str(app_dir))
    frames = [frame for frame in frames_of(event) if frame["function"] == "fail"]
    assert len(frames) == 5
    assert "code_variables" in frames[-1]  # the crash site is kept first
    assert "code_variables" not in frames[0]
    total = sum(len(json.dumps(frame["code_variables"])) for frame in frames
                if "code_variables" in frame)
    assert 0 < total <= code_variables.MAX_EVENT_CHARS


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded with the secret hunter2")


class SelfRepr:
    def __repr__(self) -> str:
        return f"SelfRepr({self!r})"


class SlowRepr:
    calls = 0

    def __repr__(self) -> str:
        SlowRepr.calls += 1
        time.sleep(code_variables.TIME_BUDGET + 0.1)
        return "slow"


def fail_with_hostile_values() -> None:
    broken = BrokenRepr()
    recursive = SelfRepr()
    cycle: list[Any] = []
    cycle.append(cycle)
    fine = 42
    raise LookupError(str(len([broken, recursive, cycle, fine])))


def test_a_raising_or_recursive_repr_becomes_a_placeholder(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    variables = crash_frame(captured(make_client, sink, fail_with_hostile_values,
                                     capture_exception_code_variables=True))["code_variables"]
    # reprlib names the object instead; the error's message (the secret) is not shown
    assert variables["broken"].startswith("<BrokenRepr instance at 0x")
    assert variables["recursive"].startswith("<SelfRepr instance at 0x")
    assert variables["cycle"] == [[["<list of 1 items>"]]]
    assert variables["fine"] == 42
    assert "hunter2" not in json.dumps(variables)


def test_a_slow_repr_spends_the_time_budget_once(
    sink: LocalSink, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a budget no pause of a loaded machine reaches before the first repr; that repr passes it
    monkeypatch.setattr(code_variables, "TIME_BUDGET", 0.5)
    SlowRepr.calls = 0

    def fail() -> None:
        first, second = SlowRepr(), SlowRepr()
        raise ValueError(f"{id(first)} {id(second)}")

    variables = crash_frame(captured(make_client, sink, fail,
                                     capture_exception_code_variables=True))["code_variables"]
    assert SlowRepr.calls == 1  # the second is never asked once the budget is spent
    assert variables["first"] == "slow"
    assert variables["second"] == "<SlowRepr: not rendered, time limit reached>"


def test_frames_outside_the_app_get_none(sink: LocalSink, make_client: ClientFactory) -> None:
    def parse() -> None:
        document = "{"
        json.loads(document)  # raises inside the standard library's json package

    event = captured(make_client, sink, parse, capture_exception_code_variables=True)
    frames = frames_of(event)
    library = [frame for frame in frames if frame.get("in_app") is False]
    assert any(frame["module"].startswith("json") for frame in library)
    assert all("code_variables" not in frame for frame in library)
    [own] = [frame for frame in frames if frame["function"].endswith("parse")]
    assert own["code_variables"] == {"document": "{"}


def test_frames_of_this_library_get_none(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(capture_exception_code_variables=True)

    @client.scoped()
    def task() -> None:
        step = "charge"
        raise CheckoutFailed(step)

    with pytest.raises(CheckoutFailed):
        task()
    [event] = delivered(client, sink, event="$exception")
    frames = frames_of(event)
    ours = [frame for frame in frames if frame["module"].startswith("posthog_integrations")]
    assert ours, "the traceback runs through the @scoped wrapper"
    assert all("code_variables" not in frame for frame in ours)
    assert crash_frame(event)["code_variables"] == {"step": "charge"}


def test_the_context_switch_wins_over_the_client_option(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    off, on = make_client(), make_client(capture_exception_code_variables=True)

    def report(client: Any) -> str:
        try:
            checkout(1, [])
        except CheckoutFailed as error:
            uuid: str = client.capture_exception(error)
        return uuid

    with new_context(capture_exception_code_variables=True):
        switched_on = report(off)
    with off.new_context(capture_exception_code_variables=False):
        switched_off = report(on)
    after_on, after_off = report(on), report(off)  # each switch ended with its context
    on.flush()
    by_uuid = {event["uuid"]: event for event in delivered(off, sink, event="$exception")}
    assert "code_variables" in crash_frame(by_uuid[switched_on])
    assert "code_variables" not in crash_frame(by_uuid[switched_off])
    assert "code_variables" in crash_frame(by_uuid[after_on])
    assert "code_variables" not in crash_frame(by_uuid[after_off])


def test_an_exception_escaping_a_switched_context_carries_its_locals(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    with pytest.raises(CheckoutFailed), client.new_context(
            capture_exception_code_variables=True):
        checkout(2, ["jam"])
    [event] = delivered(client, sink, event="$exception")
    assert crash_frame(event)["code_variables"]["items"] == ["jam"]


def test_the_testing_recorder_sees_the_variables(make_client: ClientFactory) -> None:
    client = make_client(capture_exception_code_variables=True, disabled=True)
    with capture_events() as events:
        try:
            checkout(3, ["tea"])
        except CheckoutFailed:
            client.capture_exception()
    frames = events.one("$exception")["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert frames[-1]["code_variables"]["order_id"] == 3


def test_a_failure_leaves_the_event_without_variables_logged_once(
    sink: LocalSink, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(self: Any, frame: Any) -> dict[str, Any]:
        raise MemoryError("reading locals failed")

    monkeypatch.setattr(code_variables._Renderer, "frame_variables", fail)
    monkeypatch.setattr(code_variables, "_failure_logged", False)
    client = make_client(capture_exception_code_variables=True)
    for _ in range(2):
        try:
            checkout(4, [])
        except CheckoutFailed as error:
            client.capture_exception(error)
    events = delivered(client, sink, event="$exception")
    assert len(events) == 2
    assert all("code_variables" not in frame for event in events for frame in frames_of(event))
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING
                and "local variables" in record.getMessage()]
    assert len(warnings) == 1


def test_the_option_is_validated() -> None:
    from posthog_integrations import Client

    with pytest.raises(ConfigurationError, match="capture_exception_code_variables"):
        Client(API_KEY, capture_exception_code_variables="yes")


@pytest.fixture
def flask_app(sink: LocalSink) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update({"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url,
                       "POSTHOG_CAPTURE_EXCEPTION_CODE_VARIABLES": True})

    @app.route("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        coupon = "SPRING"
        raise CheckoutFailed(f"{order_id} {coupon}")

    PostHog(app)
    yield app
    app.extensions["posthog"].client.shutdown(timeout=2)


def test_flask_setting_turns_it_on_for_a_real_request(flask_app: Flask, sink: LocalSink) -> None:
    response = flask_app.test_client().get("/orders/9")
    assert response.status_code == 500
    [event] = delivered(flask_app.extensions["posthog"].client, sink, event="$exception")
    assert crash_frame(event)["code_variables"] == {"order_id": 9, "coupon": "SPRING"}
