"""``capture_logging``: a PostHogHandler on the root logger while the client runs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from posthog_integrations import Client, ConfigurationError
from posthog_integrations.logging import PostHogHandler
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory, delivered


def root_handlers() -> list[PostHogHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, PostHogHandler)]


def log_failure(name: str, level: int = logging.ERROR) -> None:
    try:
        raise LookupError("no such row")
    except LookupError:
        logging.getLogger(name).log(level, "lookup failed", exc_info=True)


def test_off_by_default(make_client: ClientFactory) -> None:
    before = root_handlers()
    make_client()
    assert root_handlers() == before


def test_true_installs_one_root_handler_at_error_until_shutdown(
    make_client: ClientFactory, sink: LocalSink
) -> None:
    client = make_client(capture_logging=True)
    [handler] = [h for h in root_handlers() if h.client is client]
    assert handler.level == logging.ERROR
    log_failure("tests.logging.option")
    log_failure("tests.logging.option", logging.WARNING)  # below ERROR: not captured
    [event] = delivered(client, sink, event="$exception")
    assert event["properties"]["$logger_name"] == "tests.logging.option"
    client.shutdown()
    assert handler not in logging.getLogger().handlers
    client.shutdown()  # again: nothing left to remove, nothing raised


@pytest.mark.parametrize(("value", "level"), [
    ("warning", logging.WARNING), ("CRITICAL", logging.CRITICAL), (logging.INFO, logging.INFO),
    (" Error ", logging.ERROR),
])
def test_a_level_name_or_number(make_client: ClientFactory, value: Any, level: int) -> None:
    client = make_client(capture_logging=value)
    assert client.options.capture_logging == level
    assert [h.level for h in root_handlers() if h.client is client] == [level]


def test_two_clients_with_the_option_capture_a_logged_exception_once(
    make_client: ClientFactory, sink: LocalSink
) -> None:
    first, second = make_client(capture_logging=True), make_client(capture_logging=True)
    log_failure("tests.logging.option")
    assert first.flush(timeout=5)
    assert second.flush(timeout=5)
    assert len(sink.events(event="$exception")) == 1  # the sink is both clients' endpoint


def test_a_disabled_client_installs_nothing(make_client: ClientFactory) -> None:
    before = root_handlers()
    make_client(capture_logging=True, disabled=True)
    assert root_handlers() == before


@pytest.mark.parametrize("value", ["LOUD", -1, 2.5, [logging.ERROR]])
def test_a_bad_value_is_a_configuration_error(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="capture_logging must be"):
        Client("phc_x", capture_logging=value)


def test_false_is_off(make_client: ClientFactory) -> None:
    assert make_client(capture_logging=False).options.capture_logging is None
