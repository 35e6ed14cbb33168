"""Exception capture: the canonical $exception_list, once per exception, hooks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import identify_context, new_context, tag
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory


def exception_event(sink: LocalSink) -> dict[str, Any]:
    [event] = sink.events(event="$exception")
    return event


def raise_chain() -> None:
    try:
        try:
            {}["missing"]
        except KeyError as error:
            raise ValueError("bad value") from error
    except ValueError:
        raise RuntimeError("while handling")  # noqa: B904 - an implicit __context__ link


def test_manual_capture_builds_the_canonical_list(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    try:
        raise_chain()
    except RuntimeError:
        uuid = client.capture_exception(distinct_id="user-1", properties={"order": 7})
    client.flush()
    event = exception_event(sink)
    assert event["uuid"] == uuid
    assert event["distinct_id"] == "user-1"
    properties = event["properties"]
    assert properties["order"] == 7
    assert properties["$exception_level"] == "error"
    assert "$exception_source" not in properties
    assert (properties["$exception_type"], properties["$exception_message"]) == (
        "RuntimeError", "while handling"
    )
    outer, middle, root = properties["$exception_list"]
    assert (outer["type"], outer["value"]) == ("RuntimeError", "while handling")
    assert outer["mechanism"] == {
        "type": "generic", "handled": True, "synthetic": False, "exception_id": 0
    }
    assert (middle["type"], middle["value"]) == ("ValueError", "bad value")
    assert middle["mechanism"] == {
        "type": "chained", "source": "context", "exception_id": 1, "parent_id": 0
    }
    assert (root["type"], root["value"]) == ("KeyError", "'missing'")
    assert root["mechanism"] == {
        "type": "chained", "source": "cause", "exception_id": 2, "parent_id": 1
    }
    assert "module" not in outer  # builtins


def test_frames_carry_source_context_and_in_app(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    try:
        raise_chain()
    except RuntimeError as error:
        client.capture_exception(error)
    client.flush()
    outer = exception_event(sink)["properties"]["$exception_list"][0]
    frames = outer["stacktrace"]["frames"]
    assert outer["stacktrace"]["type"] == "raw"
    last = frames[-1]  # the crash site comes last
    assert last["function"] == "raise_chain"
    assert last["context_line"].strip().startswith('raise RuntimeError("while handling")')
    assert len(last["pre_context"]) == 5
    assert len(last["post_context"]) <= 5
    assert last["filename"] == "tests/core/test_exceptions.py"
    assert last["abs_path"].endswith("/tests/core/test_exceptions.py")
    assert last["module"] == "tests.core.test_exceptions"
    assert last["in_app"] is True
    assert last["platform"] == "python"
    assert isinstance(last["lineno"], int)


def test_in_app_options(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(in_app_exclude=["tests.core"])
    try:
        raise_chain()
    except RuntimeError as error:
        client.capture_exception(error)
    client.flush()
    frames = exception_event(sink)["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert frames[-1]["in_app"] is False


def test_library_frames_are_not_in_app(sink: LocalSink, make_client: ClientFactory) -> None:
    import json

    client = make_client()
    try:
        json.loads("{not json")
    except ValueError as error:
        client.capture_exception(error)
    client.flush()
    entries = exception_event(sink)["properties"]["$exception_list"]
    frames = entries[0]["stacktrace"]["frames"]
    assert frames[0]["in_app"] is True  # this test
    assert any(frame["module"] == "json.decoder" for frame in frames)
    assert entries[0]["module"] == "json.decoder"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are Python 3.11+")
def test_exception_group_members(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    group_type: Any = __builtins__["ExceptionGroup"] if isinstance(__builtins__, dict) else (
        __builtins__.ExceptionGroup  # type: ignore[attr-defined]
    )
    try:
        raise group_type("two failed", [ValueError("first"), TypeError("second")])
    except Exception as error:
        client.capture_exception(error)
    client.flush()
    group, first, second = exception_event(sink)["properties"]["$exception_list"]
    assert group["type"] == "ExceptionGroup"
    assert (first["type"], first["mechanism"]["source"], first["mechanism"]["parent_id"]) == (
        "ValueError", "member", 0
    )
    assert (second["type"], second["mechanism"]["exception_id"]) == ("TypeError", 2)


def test_cycles_and_long_chains_are_bounded(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    client.capture_exception(first)
    error: BaseException = ValueError("end")
    for index in range(80):
        wrapper = ValueError(f"wrap {index}")
        wrapper.__cause__ = error
        error = wrapper
    client.capture_exception(error)
    client.flush()
    cyclic, long_chain = sink.events(event="$exception")
    assert [e["value"] for e in cyclic["properties"]["$exception_list"]] == ["a", "b"]
    assert len(long_chain["properties"]["$exception_list"]) == 50


def test_exception_never_raised_gets_a_synthetic_stack(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    client.capture_exception(ValueError("constructed, not raised"))
    client.flush()
    [entry] = exception_event(sink)["properties"]["$exception_list"]
    assert entry["mechanism"]["synthetic"] is True
    assert entry["stacktrace"]["frames"][-1]["function"].endswith(
        "test_exception_never_raised_gets_a_synthetic_stack"
    )


def test_nothing_to_capture_returns_none(make_client: ClientFactory) -> None:
    assert make_client().capture_exception() is None


def test_escaping_exception_is_captured_once_and_reraised_unchanged(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    cause = KeyError("root")
    with pytest.raises(ValueError, match="boom") as caught:
        with client.new_context():
            tag("level", "outer")
            with new_context():
                with new_context(exception_source="django.middleware"):
                    identify_context("inner-user")
                    tag("level", "inner")
                    try:
                        raise ValueError("boom") from cause
                    except ValueError:
                        assert client.capture_exception() is not None  # manual, then re-raise
                        raise
    assert caught.value.__cause__ is cause
    client.flush()
    event = exception_event(sink)
    assert event["distinct_id"] == "inner-user"
    assert event["properties"]["level"] == "inner"
    assert event["properties"]["$exception_list"][0]["mechanism"]["handled"] is True


def test_context_exit_captures_unhandled_with_its_source(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    with pytest.raises(ZeroDivisionError):
        with client.new_context():
            with new_context(exception_source="asgi"):
                identify_context("inner")
                tag("where", "inner")
                1 / 0  # noqa: B018
    client.flush()
    event = exception_event(sink)
    assert event["distinct_id"] == "inner"
    assert event["properties"]["where"] == "inner"
    assert event["properties"]["$exception_source"] == "asgi"
    assert event["properties"]["$exception_list"][0]["mechanism"] == {
        "type": "middleware", "handled": False, "synthetic": False, "exception_id": 0
    }


def test_capture_exceptions_false_and_base_exceptions_are_not_captured(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    with pytest.raises(ValueError), client.new_context(capture_exceptions=False):
        raise ValueError("not reported")
    with pytest.raises(KeyboardInterrupt), client.new_context():
        raise KeyboardInterrupt
    client.flush()
    assert sink.events() == []


def test_unbound_context_reports_to_the_default_client(
    sink: LocalSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    posthog.configure(api_key=API_KEY, host=sink.url)
    try:
        with pytest.raises(LookupError), posthog.new_context():
            raise LookupError("to the default client")
        posthog.flush()
        assert exception_event(sink)["properties"]["$exception_type"] == "LookupError"
    finally:
        posthog.shutdown()
        posthog.api_key = None
        posthog.host = None


class BrokenMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def test_broken_exceptions_never_break_capture(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()

    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    def failing(argument: Unprintable) -> None:
        raise BrokenMessage

    try:
        failing(Unprintable())
    except BrokenMessage as error:
        assert client.capture_exception(error) is not None
    client.flush()
    [entry] = exception_event(sink)["properties"]["$exception_list"]
    assert entry["value"] == "<BrokenMessage: str() raised>"


def test_thread_excepthook_captures_and_chains(
    sink: LocalSink, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def previous(args: Any) -> None:
        seen.append(str(args.exc_value))

    monkeypatch.setattr(threading, "excepthook", previous)
    client = make_client(enable_exception_autocapture=True)
    worker = threading.Thread(target=lambda: 1 / 0)
    worker.start()
    worker.join()
    client.flush()
    event = exception_event(sink)
    assert event["properties"]["$exception_source"] == "python.threading_excepthook"
    assert event["properties"]["$exception_list"][0]["mechanism"]["handled"] is False
    assert seen == ["division by zero"]  # the previous hook still ran
    assert threading.excepthook is not previous
    client.shutdown()
    assert threading.excepthook is previous  # removed at shutdown


def test_sys_excepthook_captures_crashes_and_chains(sink: LocalSink) -> None:
    script = textwrap.dedent(f"""
        from posthog_integrations import Client
        client = Client({API_KEY!r}, host={sink.url!r}, enable_exception_autocapture=True)
        raise SystemError("crash at top level")
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=20)
    assert completed.returncode == 1
    assert b"SystemError: crash at top level" in completed.stderr  # the default hook ran
    event = exception_event(sink)
    assert event["properties"]["$exception_source"] == "python.sys_excepthook"
    assert event["properties"]["$exception_level"] == "fatal"


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    code: int


class ReadOnlyError(Exception):
    def __setattr__(self, name: str, value: Any) -> None:
        raise RuntimeError("read-only exception")


class SlottedReadOnlyError(Exception):
    __slots__ = ()  # no __dict__, no __weakref__

    def __setattr__(self, name: str, value: Any) -> None:
        raise RuntimeError("read-only exception")


class MissingAttributesRaise(Exception):
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class EveryAttributeRaises(Exception):
    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def _odd_exceptions() -> dict[str, BaseException]:
    return {
        "frozen dataclass": FrozenError(7),
        "__setattr__ raises": ReadOnlyError("read-only"),
        "slotted, __setattr__ raises": SlottedReadOnlyError("slotted"),
        "__getattr__ raises": MissingAttributesRaise("missing"),
        "__getattribute__ raises": EveryAttributeRaises("every"),
        "builtin": ValueError("builtin"),
    }


@pytest.mark.parametrize("kind", sorted(_odd_exceptions()))
def test_an_exception_is_captured_once_whatever_its_class(
    sink: LocalSink, make_client: ClientFactory, kind: str
) -> None:
    client = make_client()
    error = _odd_exceptions()[kind]
    uuids: list[str | None] = []
    escaped: object = None
    try:  # not pytest.raises: pytest cannot report an exception whose every attribute raises
        with client.new_context(), new_context(), new_context(exception_source="inner"):
            try:
                raise error
            except type(error):
                uuids.append(client.capture_exception())
                uuids.append(client.capture_exception())  # already reported
                raise
    except BaseException as caught:  # compared right below
        escaped = caught
    assert escaped is error
    uuid, again = uuids
    assert uuid is not None
    assert again is None
    assert client.capture_exception(error) is None
    client.flush()
    event = exception_event(sink)
    assert event["uuid"] == uuid
    entry = event["properties"]["$exception_list"][0]
    assert entry["type"] == type(error).__name__
    assert entry["stacktrace"]["frames"][-1]["function"].endswith(
        "test_an_exception_is_captured_once_whatever_its_class")
    assert client.stats().dropped == 0


def test_equal_exceptions_are_told_apart(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    first, second = FrozenError(1), FrozenError(1)  # equal, and hash alike
    assert first == second
    assert client.capture_exception(first) is not None
    assert client.capture_exception(second) is not None
    client.flush()
    assert len(sink.events(event="$exception")) == 2


def test_captured_exceptions_are_not_kept_alive(make_client: ClientFactory) -> None:
    import gc
    import weakref

    client = make_client()
    error = FrozenError(3)
    uuid = client.capture_exception(error)
    watcher = weakref.ref(error)
    del error
    gc.collect()
    assert uuid is not None
    assert watcher() is None


def test_frames_that_ask_to_be_hidden_are_left_out(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    def helper() -> None:
        __tracebackhide__ = True  # read by the library, as by pytest
        raise ValueError("from a hidden helper")

    client = make_client()
    try:
        helper()
    except ValueError as error:
        client.capture_exception(error)
    client.flush()
    frames = exception_event(sink)["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert [frame["function"].rsplit(".", 1)[-1] for frame in frames] == [
        "test_frames_that_ask_to_be_hidden_are_left_out"
    ]


# -- size limits ------------------------------------------------------------------------------

LONG_LINE = "    # " + "x" * 5000


def load_deep_module(tmp_path: Any) -> Any:
    """A real source file whose every line around the recursion is 5,000 characters long."""
    import importlib.util

    source = "\n".join([
        "def recurse(depth, message):",
        *[LONG_LINE] * 5,
        "    if depth: return recurse(depth - 1, message)",
        *[LONG_LINE] * 5,
        "    raise ValueError(message)",
    ]) + "\n"
    path = tmp_path / "deep_source.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("deep_source", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_huge_message_is_truncated_and_the_event_sent(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client()
    try:
        raise ValueError("é" * 1_000_000)  # 2 MB of UTF-8
    except ValueError as error:
        uuid = client.capture_exception(error)
    client.flush()
    event = exception_event(sink)
    assert event["uuid"] == uuid
    [entry] = event["properties"]["$exception_list"]
    value = entry["value"]
    assert value.endswith("...")
    assert 8 * 1024 - 4 <= len(value.encode()) <= 8 * 1024
    assert event["properties"]["$exception_message"] == value
    assert client.stats().dropped == 0


def test_huge_stacks_of_long_lines_stay_under_the_event_limit(
    sink: LocalSink, make_client: ClientFactory, tmp_path: Any
) -> None:
    from posthog_integrations.core.serialization import encode_event

    module = load_deep_module(tmp_path)
    client = make_client()
    error: BaseException | None = None
    for index in range(5):  # five chained exceptions, each 300 frames deep
        try:
            try:
                module.recurse(300, f"{index}: " + "m" * 100_000)
            except ValueError as inner:
                inner.__context__ = error
                raise
        except ValueError as caught:
            error = caught
    assert error is not None
    uuid = client.capture_exception(error)
    client.flush()
    event = exception_event(sink)
    assert event["uuid"] == uuid
    assert len(encode_event(event)) < 900 * 1024
    entries = event["properties"]["$exception_list"]
    assert entries[0]["value"].startswith("4: mmm")
    frames = entries[0]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "recurse"
    assert frames[0]["function"] == "test_huge_stacks_of_long_lines_stay_under_the_event_limit"
    assert client.stats().dropped == 0


def test_source_lines_are_cut_to_300_characters(
    sink: LocalSink, make_client: ClientFactory, tmp_path: Any
) -> None:
    module = load_deep_module(tmp_path)
    client = make_client()
    try:
        module.recurse(2, "shallow")
    except ValueError as error:
        client.capture_exception(error)
    client.flush()
    frame = exception_event(sink)["properties"]["$exception_list"][0]["stacktrace"]["frames"][-1]
    assert frame["context_line"] == "    raise ValueError(message)"
    assert frame["pre_context"][-1] == LONG_LINE[:297] + "..."


def test_the_exception_list_is_shrunk_below_its_budget_whatever_the_input(tmp_path: Any) -> None:
    import json

    from posthog_integrations.core.exceptions import MAX_LIST_BYTES, InAppRules, exception_list

    module = load_deep_module(tmp_path)
    error: BaseException | None = None
    for index in range(60):  # chained past the 50-entry cap, 300 frames each
        try:
            try:
                # control characters: six bytes each once escaped in JSON
                module.recurse(300, f"{index}:" + "\x01" * 20_000)
            except ValueError as inner:
                inner.__context__ = error
                raise
        except ValueError as caught:
            error = caught
    assert error is not None
    entries = exception_list(error, rules=InAppRules(str(tmp_path)), mechanism_type="generic",
                             handled=True)
    assert len(json.dumps(entries).encode()) <= MAX_LIST_BYTES
    assert entries[0]["value"].startswith("59:")
    assert entries[0]["stacktrace"]["frames"][-1]["function"] == "recurse"
