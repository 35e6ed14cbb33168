"""Never hurt the host: disabled clients, hooks that fail, secrets, exit and fork."""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
import textwrap
import threading
import types
import uuid
from typing import Any, Callable

import pytest

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.conftest import API_KEY, ClientFactory, delivered
from tests.core.test_delivery import sender_threads


def test_disabled_client_sends_nothing_and_starts_nothing(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    before = len(sender_threads())
    client = make_client(disabled=True)
    assert client.capture("a", distinct_id="u") is None
    assert client.set(distinct_id="u", properties={"a": 1}) is None
    assert client.flush()
    assert client.shutdown()
    assert sink.requests() == []
    assert len(sender_threads()) == before
    assert client.stats().dropped_by_reason["disabled"] == 2  # refused, and counted


def test_missing_key_disables_with_one_warning(
    sink: LocalSink, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.setattr("posthog_integrations.core.client._missing_key_warned", False)
    first, second = Client(host=sink.url), Client("   ", host=sink.url)
    assert first.disabled
    assert second.disabled
    assert first.capture("a", distinct_id="u") is None
    assert sink.requests() == []
    warnings = [r for r in caplog.records if "no PostHog API key" in r.getMessage()]
    assert len(warnings) == 1


def test_environment_kill_switch(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_DISABLED", "1")
    client = Client(API_KEY, host=sink.url)
    assert client.capture("a", distinct_id="u") is None
    assert sink.requests() == []


def test_before_send_can_edit_and_drop(sink: LocalSink, make_client: ClientFactory) -> None:
    def scrub(event: dict[str, Any]) -> dict[str, Any] | None:
        if event["event"] == "internal":
            return None
        event["properties"].pop("email", None)
        event["uuid"] = "0190b7a4-0000-7000-8000-000000000001"
        return event

    client = make_client(before_send=scrub)
    returned = client.capture("signed up", distinct_id="u", properties={"email": "a@b.c"})
    assert client.capture("internal", distinct_id="u") is None
    client.flush()
    [event] = sink.events()
    assert "email" not in event["properties"]
    assert returned == event["uuid"] == "0190b7a4-0000-7000-8000-000000000001"
    assert client.stats().dropped_by_reason["before_send"] == 1


@pytest.mark.parametrize("hook_result", ["raise", "not a dict"])
def test_failing_before_send_fails_closed(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture,
    hook_result: str,
) -> None:
    def hook(event: dict[str, Any]) -> Any:
        if hook_result == "raise":
            raise RuntimeError("scrubber bug")
        return hook_result

    client = make_client(before_send=hook)
    assert client.capture("secret", distinct_id="u") is None
    client.flush()
    assert sink.requests() == []
    assert "before_send" in caplog.text
    assert client.stats().dropped_by_reason["before_send"] == 1


MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "no event name": lambda event: {k: v for k, v in event.items() if k != "event"},
    "the event name deleted in place": lambda event: (event.pop("event"), event)[1],
    "an empty event name": lambda event: {**event, "event": ""},
    "an event name that is not a string": lambda event: {**event, "event": 42},
    "properties that are not a mapping": lambda event: {**event, "properties": ["a"]},
    "no distinct id": lambda event: {**event, "distinct_id": None},
    "a distinct id that is not a string": lambda event: {**event, "distinct_id": object()},
    "a uuid that is not one": lambda event: {**event, "uuid": "not-a-uuid"},
    "a uuid of no JSON type": lambda event: {**event, "uuid": object()},
    "a timestamp that is not one": lambda event: {**event, "timestamp": "yesterday"},
    "no timestamp": lambda event: {k: v for k, v in event.items() if k != "timestamp"},
}


@pytest.mark.parametrize("mistake", MALFORMED)
def test_a_malformed_event_from_before_send_is_dropped_alone(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture, mistake: str
) -> None:
    def hook(event: dict[str, Any]) -> Any:
        return MALFORMED[mistake](event) if event["event"] == "broken" else event

    client = make_client(before_send=hook, flush_at=1000)
    kept = [client.capture("first", distinct_id="u"), client.capture("second", distinct_id="u")]
    for _ in range(3):
        assert client.capture("broken", distinct_id="u") is None
    assert client.flush()
    assert [event["uuid"] for event in sink.events()] == kept  # one batch, without the broken
    assert client.stats().dropped_by_reason["before_send"] == client.stats().dropped == 3
    lines = [r.getMessage() for r in caplog.records if "before_send returned" in r.getMessage()]
    assert len(lines) == 1, lines


def test_before_send_may_set_a_uuid_and_timestamp_of_its_own_types(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    new_uuid = uuid.UUID("0190b7a4-0000-7000-8000-000000000002")
    when = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)

    def hook(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "uuid": new_uuid, "timestamp": when, "distinct_id": "other"}

    client = make_client(before_send=hook)
    client.capture("edited", distinct_id="u")
    [event] = delivered(client, sink)
    assert (event["uuid"], event["distinct_id"]) == (str(new_uuid), "other")
    assert event["timestamp"].startswith("2024-05-01T12:00:00")


def test_on_error_that_raises_is_contained(sink: LocalSink, make_client: ClientFactory) -> None:
    sink.script(400)

    def on_error(error: Exception, batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("callback bug")

    client = make_client(on_error=on_error)
    client.capture("a", distinct_id="u")
    client.flush()
    client.capture("b", distinct_id="u")
    assert client.flush()
    assert [event["event"] for event in sink.events()] == ["b"]


def test_api_key_never_appears_in_logs(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script(
        ScriptedResponse(status=401, body=f'{{"detail": "bad key {API_KEY}"}}'.encode()),
        503, ScriptedResponse(drop_connection=True),
    )
    errors: list[str] = []
    client = make_client(debug=True, on_error=lambda error, batch: errors.append(str(error)))
    client.capture("a", distinct_id="u")
    client.flush()
    client.capture("b", distinct_id="u")
    client.flush()
    client.shutdown()
    assert caplog.records
    assert API_KEY not in caplog.text
    assert errors
    assert all(API_KEY not in error for error in errors)
    assert API_KEY not in repr(client)
    assert API_KEY not in repr(client.options)


def test_debug_logs_each_stage(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script(503)
    client = make_client(debug=True)
    client.capture("a", distinct_id="u")
    client.flush()
    text = caplog.text
    assert "accepted event 'a'" in text
    assert "retry 1" in text
    assert "sent a batch of 1 events" in text


def test_a_script_that_captures_and_exits_delivers(sink: LocalSink) -> None:
    script = textwrap.dedent(f"""
        from posthog_integrations import Client
        client = Client({API_KEY!r}, host={sink.url!r}, flush_interval=30)
        for index in range(3):
            client.capture("from script", distinct_id="script", properties={{"i": index}})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=20)
    assert len(sink.wait_for_events(3, timeout=1)) == 3


def test_exit_never_hangs_on_a_hung_server(sink: LocalSink) -> None:
    sink.script(ScriptedResponse(hang=True))
    script = textwrap.dedent(f"""
        from posthog_integrations import Client
        client = Client({API_KEY!r}, host={sink.url!r}, timeout=60)
        client.capture("never answered", distinct_id="script")
    """)
    completed = subprocess.run([sys.executable, "-c", script], timeout=10, capture_output=True)
    assert completed.returncode == 0
    assert b"were not sent" in completed.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_sends_its_own_events_only(
    sink: LocalSink, make_client: ClientFactory
) -> None:
    client = make_client(flush_at=1000, flush_interval=60)
    client.capture("parent before fork", distinct_id="parent")
    assert len(sender_threads()) >= 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: capture, flush and report through the exit code
        code = 1
        try:
            client.capture("child", distinct_id="child")
            code = 0 if client.flush(timeout=5) else 2
        finally:
            os.write(write_end, b"x")
            os._exit(code)
    os.close(write_end)
    os.read(read_end, 1)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 if hasattr(os, "waitstatus_to_exitcode") else True
    assert [event["event"] for event in sink.events()] == ["child"]
    client.capture("parent after fork", distinct_id="parent")
    assert client.flush()
    assert sorted(event["event"] for event in sink.events()) == [
        "child", "parent after fork", "parent before fork"
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_another_thread_captures_does_not_deadlock(
    sink: LocalSink, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Quiet logging: a fork while another thread writes a log line leaves the log file's own
    # buffer lock held in the child (a hazard of Python's buffered I/O, not of this library),
    # and the child would hang on its first log line.
    caplog.set_level(logging.CRITICAL, logger="posthog_integrations")
    client = make_client(flush_at=5)
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            client.capture("busy", distinct_id="parent")

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                client.capture("child", distinct_id="child")
                os._exit(0 if client.flush(timeout=5) else 3)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status)
            assert os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        worker.join()
    assert client.flush()
    assert len(sink.events(event="child")) == 5


def test_logger_is_namespaced() -> None:
    assert logging.getLogger("posthog_integrations").name == "posthog_integrations"


def test_modules_imported_lazily_on_the_first_request_are_imported_up_front() -> None:
    # A fork while the sender thread first-imports one of them would leave its import lock held
    # in the child, whose sender would then hang on its first request.
    code = ("import sys, posthog_integrations; "
            "print('netrc' in sys.modules, 'encodings.idna' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.split() == ["True", "True"]


def test_uwsgi_without_threads_is_warned_about_once(
        make_client: ClientFactory, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from posthog_integrations.core import sender

    # What uWSGI puts in sys.modules of its workers; options as uWSGI gives them (bytes).
    monkeypatch.setitem(sys.modules, "uwsgi", types.SimpleNamespace(opt={"master": True}))
    monkeypatch.setattr(sender, "_threads_checked_in", 0)
    make_client().capture("one", distinct_id="u")
    make_client().capture("two", distinct_id="u")
    warnings = [r.getMessage() for r in caplog.records if "uWSGI" in r.getMessage()]
    assert len(warnings) == 1
    assert "enable-threads = true" in warnings[0]


def test_uwsgi_with_threads_is_not_warned_about(
        make_client: ClientFactory, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from posthog_integrations.core import sender

    monkeypatch.setitem(sys.modules, "uwsgi",
                        types.SimpleNamespace(opt={"enable-threads": b"true"}))
    monkeypatch.setattr(sender, "_threads_checked_in", 0)
    make_client().capture("one", distinct_id="u")
    assert not [r for r in caplog.records if "uWSGI" in r.getMessage()]
