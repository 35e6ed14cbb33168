"""PostHogHandler with a real client delivering to the local endpoint."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.logging import LogMessage, PostHogHandler
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY, ClientFactory, delivered


class PaymentFailed(Exception):
    pass


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger of the app's own, its records kept away from the root's handlers."""
    logger = logging.getLogger("tests.logging.app")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def charge(logger: logging.Logger, order: str) -> None:
    try:
        raise PaymentFailed(f"card declined for {order}")
    except PaymentFailed:
        logger.exception("charging %s failed", order)


def exceptions(client: Client, sink: LocalSink) -> list[dict[str, Any]]:
    return delivered(client, sink, event="$exception")


def test_a_logged_exception_is_one_handled_logger_event(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler(client=client))
    charge(app_logger, "order-7")
    [event] = exceptions(client, sink)
    props = event["properties"]
    assert props["$exception_source"] == "python.logging"
    assert props["$exception_level"] == "error"
    assert props["$log_message"] == "charging order-7 failed"
    assert props["$logger_name"] == "tests.logging.app"
    [entry] = props["$exception_list"]
    assert entry["type"] == "PaymentFailed"
    assert entry["value"] == "card declined for order-7"
    assert entry["mechanism"]["type"] == "logger"
    assert entry["mechanism"]["handled"] is True
    assert not entry["mechanism"].get("synthetic")
    assert entry["stacktrace"]["frames"][-1]["function"] == "charge"  # the real traceback


@pytest.mark.parametrize(("level", "expected"), [
    (logging.CRITICAL, "fatal"), (logging.ERROR, "error"), (logging.WARNING, "warning"),
    (logging.INFO, "info"), (logging.DEBUG, "debug"), (logging.ERROR + 5, "error"),
])
def test_the_record_level_becomes_the_exception_level(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger, level: int,
    expected: str,
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler(logging.DEBUG, client=client))
    try:
        raise PaymentFailed("declined")
    except PaymentFailed:
        app_logger.log(level, "payment", exc_info=True)
    [event] = exceptions(client, sink)
    assert event["properties"]["$exception_level"] == expected


def test_records_below_the_level_or_without_an_exception_are_not_captured(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler(client=client))
    try:
        raise PaymentFailed("declined")
    except PaymentFailed:
        app_logger.warning("only a warning", exc_info=True)
    app_logger.error("an error without an exception")
    app_logger.exception("logged outside an except block")  # exc_info is (None, None, None)
    posthog_event = client.capture("marker")
    assert posthog_event is not None
    assert [e["event"] for e in delivered(client, sink)] == ["marker"]


def test_records_without_an_exception_are_captured_when_asked_with_the_call_site_stack(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler(client=client, capture_without_exc_info=True))

    def reconcile() -> None:
        app_logger.error("ledger off by %d cents", 12)

    reconcile()
    [event] = exceptions(client, sink)
    props = event["properties"]
    [entry] = props["$exception_list"]
    assert entry["type"] == LogMessage.__name__
    assert entry["value"] == "ledger off by 12 cents"
    assert entry["mechanism"] == {"type": "logger", "handled": True, "exception_id": 0,
                                  "synthetic": True}
    frames = entry["stacktrace"]["frames"]
    # It ends where the app logged: no frame of logging's or of the handler's.
    assert frames[-1]["function"].endswith("reconcile")
    assert frames[-2]["function"].endswith("call_site_stack")
    assert not any(frame["module"].startswith(("logging", "posthog_integrations"))
                   for frame in frames)
    assert props["$exception_source"] == "python.logging"
    assert props["$log_message"] == "ledger off by 12 cents"


def test_the_event_carries_the_context_identity_and_tags(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler())  # no client: the context's, as module calls
    with client.new_context():
        posthog.identify_context("user-9")
        posthog.tag("plan", "pro")
        charge(app_logger, "order-1")
    [event] = exceptions(client, sink)
    assert event["distinct_id"] == "user-9"
    assert event["properties"]["plan"] == "pro"


def test_without_a_client_or_context_the_default_client_captures(
    sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = posthog.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
    try:
        app_logger.addHandler(PostHogHandler())
        charge(app_logger, "order-2")
        [event] = exceptions(client, sink)
        assert event["properties"]["$log_message"] == "charging order-2 failed"
    finally:
        posthog.shutdown()


def test_an_exception_already_captured_is_not_captured_again_when_logged(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.addHandler(PostHogHandler(client=client))
    try:
        raise PaymentFailed("declined")
    except PaymentFailed as error:
        client.capture_exception(error)
        app_logger.exception("declined")
    [event] = exceptions(client, sink)
    assert "$exception_source" not in event["properties"]  # the manual capture's


def test_a_record_reaching_two_handlers_is_one_event(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    app_logger.propagate = True
    child = logging.getLogger("tests.logging.app.child")
    both = [PostHogHandler(client=client, capture_without_exc_info=True) for _ in range(2)]
    app_logger.addHandler(both[0])
    child.addHandler(both[1])
    try:
        charge(child, "order-3")
        child.error("no exception here")
    finally:
        child.removeHandler(both[1])
    values = sorted(e["properties"]["$exception_list"][0]["value"]
                    for e in exceptions(client, sink))
    assert values == ["card declined for order-3", "no exception here"]


def test_logging_from_before_send_does_not_loop(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    seen: list[str] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event["event"])
        try:
            raise RuntimeError("inside before_send")
        except RuntimeError:
            app_logger.exception("before_send logged an error")
        return event

    client = make_client(before_send=before_send)
    app_logger.addHandler(PostHogHandler(client=client))
    charge(app_logger, "order-4")
    [event] = exceptions(client, sink)
    assert event["properties"]["$exception_list"][0]["type"] == "PaymentFailed"
    assert seen == ["$exception"]


def test_the_library_own_log_records_are_never_captured(
    make_client: ClientFactory, sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_before_send(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("broken before_send")

    client = make_client(before_send=failing_before_send)
    handler = PostHogHandler(logging.DEBUG, client=client, capture_without_exc_info=True)
    library = logging.getLogger("posthog_integrations")
    library.addHandler(handler)
    try:
        client.capture("checkout")  # dropped: before_send raised, logged with its traceback
    finally:
        library.removeHandler(handler)
    assert any(record.exc_info for record in caplog.records
               if record.name == "posthog_integrations")
    dropped = client.stats().dropped_by_reason
    assert (dropped["before_send"], dropped["invalid"]) == (1, 0)
    assert delivered(client, sink) == []


def test_a_bad_record_never_raises_nor_prints_and_is_counted(
    make_client: ClientFactory, sink: LocalSink, capsys: pytest.CaptureFixture[str],
) -> None:
    client = make_client()
    handler = PostHogHandler(client=client)
    try:
        raise PaymentFailed("declined")
    except PaymentFailed:
        record = logging.LogRecord("tests.logging.app", logging.ERROR, __file__, 1,
                                   "bad %d", ("not a number",), exc_info=None)
        import sys
        record.exc_info = sys.exc_info()
    handler.handle(record)  # the message does not format: the message as written is sent
    [event] = exceptions(client, sink)
    assert event["properties"]["$log_message"] == "bad %d"
    broken = logging.makeLogRecord({"levelno": "not a level", "exc_info": record.exc_info,
                                    "msg": "x"})
    broken.exc_info = (PaymentFailed, PaymentFailed("other"), None)
    handler.handle(broken)
    handler.handle(broken)
    assert client.stats().dropped_by_reason["invalid"] == 2
    assert capsys.readouterr().err == ""


def test_threads_logging_at_once_each_get_their_own_events(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    # 120 failures of one kind: off the storm limit, which would hold back all but a burst
    client = make_client(max_queue_size=1000, exception_rate_limit=False)
    app_logger.addHandler(PostHogHandler())
    start = threading.Barrier(6)

    def work(number: int) -> None:
        with client.new_context():
            posthog.identify_context(f"worker-{number}")
            start.wait()
            for item in range(20):
                charge(app_logger, f"{number}-{item}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = exceptions(client, sink)
    assert len(events) == 120
    for event in events:
        order = event["properties"]["$log_message"].split()[1]
        assert event["distinct_id"] == f"worker-{order.split('-')[0]}"


def test_records_are_captured_without_waiting_for_the_handler_lock(
    make_client: ClientFactory, sink: LocalSink, app_logger: logging.Logger
) -> None:
    client = make_client()
    handler = PostHogHandler(client=client)
    app_logger.addHandler(handler)
    logged = threading.Thread(target=charge, args=(app_logger, "order-5"))
    handler.acquire()  # held, as while another thread sets its formatter
    try:
        logged.start()
        logged.join(timeout=30)
        assert not logged.is_alive(), "logging waited for the handler's lock"
    finally:
        handler.release()
        logged.join()
    assert len(exceptions(client, sink)) == 1
