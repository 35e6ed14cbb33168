"""The exception spec for manual capture, the excepthooks, typed arguments and nesting."""

from __future__ import annotations

import builtins
import logging
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import new_context, tag
from posthog_integrations.sink import LocalSink
from posthog_integrations.testing import capture_events
from tests.conftest import API_KEY, ClientFactory, delivered
from tests.exceptions.spec_rows import (
    ASGI,
    MAIN_THREAD,
    MANUAL,
    OTHER_THREAD,
    assert_row,
    assert_well_formed,
)

RESERVED = {
    "$exception_list": [{"type": "Forged", "value": "by the caller"}],
    "$exception_level": "debug",
    "$exception_source": "caller.forged",
    "$debug_images": [{"type": "forged"}],
}


def entries_of(client: Any, sink: LocalSink) -> list[dict[str, Any]]:
    [event] = delivered(client, sink, event="$exception")
    entries: list[dict[str, Any]] = event["properties"]["$exception_list"]
    assert_well_formed(entries)
    return entries


def relations(entries: list[dict[str, Any]]) -> list[tuple[str, int | None, str | None]]:
    """(message, parent id, source) of each entry, in order."""
    return [(e["value"], e["mechanism"].get("parent_id"), e["mechanism"].get("source"))
            for e in entries]


def test_manual_capture_of_a_raised_exception(sink: LocalSink,
                                              make_client: ClientFactory) -> None:
    client = make_client()
    try:
        raise ValueError("caught")
    except ValueError as error:
        client.capture_exception(error)
    [event] = delivered(client, sink, event="$exception")
    assert_row(event, MANUAL, synthetic=False)


def test_manual_capture_of_an_exception_never_raised_is_synthetic(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    client.capture_exception(ValueError("built, never raised"))
    [event] = delivered(client, sink, event="$exception")
    assert_row(event, MANUAL, synthetic=True)


@pytest.mark.parametrize(("given", "written"), [
    ("fatal", "fatal"), ("error", "error"), ("warning", "warning"), ("log", "log"),
    ("info", "info"), ("debug", "debug"), ("warn", "warning"), ("WARN", "warning"),
    ("critical", "fatal"), ("CRITICAL", "fatal"), ("Info", "info"), (" Error ", "error"),
])
def test_the_typed_level_is_normalised(given: str, written: str, sink: LocalSink,
                                       make_client: ClientFactory) -> None:
    client = make_client()
    client.capture_exception(ValueError("levelled"), level=given)
    [event] = delivered(client, sink, event="$exception")
    assert event["properties"]["$exception_level"] == written


def test_the_typed_fingerprint_groups_the_event(sink: LocalSink,
                                                make_client: ClientFactory) -> None:
    client = make_client()
    client.capture_exception(ValueError("grouped"), fingerprint="checkout-timeouts",
                             properties={"$exception_fingerprint": "from the bag"})
    client.capture_exception(ValueError("grouped by the bag"),
                             properties={"$exception_fingerprint": "from the bag"})
    typed, bagged = delivered(client, sink, event="$exception")
    assert typed["properties"]["$exception_fingerprint"] == "checkout-timeouts"
    assert bagged["properties"]["$exception_fingerprint"] == "from the bag"


@pytest.mark.parametrize(("level", "fingerprint"), [
    ("severe", "kept"), (40, "kept"), ("", "kept"), ("warning", ""), ("warning", 7),
    ("loud", ["a", "list"]),
])
def test_a_bad_typed_argument_falls_back_and_loses_nothing_else(
        level: Any, fingerprint: Any, sink: LocalSink, make_client: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    client = make_client()
    uuid = client.capture_exception(ValueError("still sent"), level=level,
                                    fingerprint=fingerprint, distinct_id="user-9",
                                    properties={"order": 12})
    [event] = delivered(client, sink, event="$exception")
    assert event["uuid"] == uuid
    assert event["distinct_id"] == "user-9"
    properties = event["properties"]
    assert properties["order"] == 12
    level_is_good = level == "warning"
    assert properties["$exception_level"] == ("warning" if level_is_good else "error")
    if fingerprint == "kept":
        assert properties["$exception_fingerprint"] == "kept"
    else:
        assert "$exception_fingerprint" not in properties
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if not level_is_good:
        assert any("level=" in message and "'error'" in message for message in warnings)
    if fingerprint != "kept":
        assert any("fingerprint=" in message for message in warnings)
    assert client.stats().dropped == 0


def test_the_module_facade_takes_the_typed_arguments() -> None:
    with capture_events() as events:
        try:
            raise KeyError("facade")
        except KeyError:
            posthog.capture_exception(level="warn", fingerprint="facade-group")
    event = events.one("$exception")
    assert event["properties"]["$exception_level"] == "warning"
    assert event["properties"]["$exception_fingerprint"] == "facade-group"


def test_caller_properties_never_override_the_reserved_ones(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client(super_properties={"$exception_source": "super.forged"})
    try:
        raise ValueError("real")
    except ValueError as error:
        client.capture_exception(error, properties={**RESERVED, "kept": True})
    with pytest.raises(LookupError), client.new_context(exception_source="asgi.middleware"):
        tag("$exception_level", "info")
        tag("$debug_images", ["tagged"])
        raise LookupError("escaping")
    manual, escaped = delivered(client, sink, event="$exception")
    properties = manual["properties"]
    assert properties["kept"] is True
    assert properties["$exception_list"][0]["value"] == "real"
    assert properties["$exception_level"] == "error"
    assert "$exception_source" not in properties
    assert "$debug_images" not in properties
    assert escaped["properties"]["$exception_level"] == "error"
    assert escaped["properties"]["$exception_source"] == "asgi.middleware"
    assert "$debug_images" not in escaped["properties"]


# -- nesting -----------------------------------------------------------------------------------

def test_explicit_causes_and_implicit_contexts_are_told_apart(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    try:
        try:
            try:
                raise KeyError("root")
            except KeyError as root:
                raise ValueError("wrapped") from root
        except ValueError:
            raise RuntimeError("while handling")  # noqa: B904 - the implicit link on purpose
    except RuntimeError as error:
        client.capture_exception(error)
    assert relations(entries_of(client, sink)) == [
        ("while handling", None, None), ("wrapped", 0, "context"), ("'root'", 1, "cause"),
    ]


def test_a_suppressed_context_is_left_out(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    try:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("clean") from None
    except ValueError as error:
        assert error.__context__ is not None
        client.capture_exception(error)
    assert relations(entries_of(client, sink)) == [("clean", None, None)]


def _exception_group(message: str, members: list[Exception]) -> Exception:
    group: Any = vars(builtins)["ExceptionGroup"]  # named so on Python 3.9 too
    error: Exception = group(message, members)
    return error


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are Python 3.11+")
def test_exception_group_members_come_depth_first(sink: LocalSink,
                                                  make_client: ClientFactory) -> None:
    client = make_client()
    first = ValueError("first")
    first.__cause__ = KeyError("first's cause")
    inner = _exception_group("inner group", [TypeError("deep")])
    try:
        raise _exception_group("outer group", [first, inner, OSError("last")])
    except Exception as error:
        client.capture_exception(error)
    assert relations(entries_of(client, sink)) == [
        ("outer group (3 sub-exceptions)", None, None),
        ("first", 0, "member"), ('"first\'s cause"', 1, "cause"),
        ("inner group (1 sub-exception)", 0, "member"), ("deep", 3, "member"),
        ("last", 0, "member"),
    ]


def test_a_chain_of_60_keeps_the_outermost_and_the_next_49(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    error: BaseException = ValueError("link 0")
    for index in range(1, 60):
        wrapper = ValueError(f"link {index}")
        wrapper.__cause__ = error
        error = wrapper
    client.capture_exception(error)
    entries = entries_of(client, sink)
    assert [e["value"] for e in entries] == [f"link {i}" for i in range(59, 9, -1)]
    assert [e["mechanism"].get("parent_id") for e in entries] == [None, *range(49)]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are Python 3.11+")
def test_truncation_keeps_the_first_49_nested_in_depth_first_order(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    members: list[Exception] = []
    for index in range(40):
        member = ValueError(f"member {index}")
        member.__cause__ = KeyError(f"cause {index}")
        members.append(member)
    client.capture_exception(_exception_group("many", members))
    entries = entries_of(client, sink)
    expected = ["many (40 sub-exceptions)"]
    for index in range(25):
        expected += [f"member {index}", f"'cause {index}'"]
    assert [e["value"] for e in entries] == expected[:50]


def test_cycles_are_cut(sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    first, second = ValueError("first"), ValueError("second")
    first.__cause__, second.__cause__ = second, first
    alone = KeyError("alone")
    alone.__context__ = alone
    client.capture_exception(first)
    client.capture_exception(alone)
    events = delivered(client, sink, event="$exception")
    lists = [e["properties"]["$exception_list"] for e in events]
    for entries in lists:
        assert_well_formed(entries)
    assert [relations(entries) for entries in lists] == [
        [("first", None, None), ("second", 0, "cause")], [("'alone'", None, None)],
    ]


# -- the excepthooks -----------------------------------------------------------------------------

def test_an_uncaught_exception_in_a_thread(sink: LocalSink, make_client: ClientFactory,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    client = make_client(enable_exception_autocapture=True)
    worker = threading.Thread(target=lambda: {}["missing"])
    worker.start()
    worker.join()
    [event] = delivered(client, sink, event="$exception")
    assert_row(event, OTHER_THREAD)
    client.shutdown()


def test_an_uncaught_exception_in_the_main_thread(sink: LocalSink) -> None:
    script = textwrap.dedent(f"""
        from posthog_integrations import Client
        client = Client({API_KEY!r}, host={sink.url!r}, enable_exception_autocapture=True)
        try:
            {{}}["missing"]
        except KeyError as error:
            raise RuntimeError("the process ends") from error
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert completed.returncode == 1
    [event] = sink.events(event="$exception")
    assert_row(event, MAIN_THREAD)
    assert [e["type"] for e in event["properties"]["$exception_list"]] == [
        "RuntimeError", "KeyError"]


def test_context_exit_in_new_context_reports_its_source_and_level(
        sink: LocalSink, make_client: ClientFactory) -> None:
    client = make_client()
    with pytest.raises(ZeroDivisionError), client.new_context(), \
            new_context(exception_source="asgi.middleware"):
        1 / 0  # noqa: B018
    [event] = delivered(client, sink, event="$exception")
    assert_row(event, ASGI)
