"""The command line: the demo (the README's first command) and argument handling."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from posthog_integrations import demo
from posthog_integrations.__main__ import main


def test_the_demo_serves_every_shop_and_every_event_arrives(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    output = capsys.readouterr().out
    assert "every expected event arrived from all 3 shops" in output
    rows = [line.split() for line in output.splitlines() if "session-flask" in line]
    assert [row[0] for row in rows] == [
        "$pageview", "signed", "$feature_flag_called", "item", "$exception", "report"]
    # The variant read in the add-to-cart view (from example_projects/flags.json) rides on
    # that request's event.
    assert rows[2][1:] == ["user-flask-fan", "session-flask", "/cart/<int:item_id>",
                           "checkout-layout=one-page"]
    assert rows[3][2:] == ["user-flask-fan", "session-flask", "/cart/<int:item_id>",
                           "item_id=42", "checkout-layout=one-page"]
    assert "RuntimeError <- ConnectionError (unhandled)" in output


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2


def test_the_demo_shows_events_in_the_visits_order_whatever_order_they_arrived_in(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A threaded server can capture a request's page view after the next request's events.
    arrived = _visit_events(reversed(demo.EXPECTED))
    assert demo._report(FLASK, arrived)
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()
            if "session-flask" in line]
    assert rows == [name.split()[0] for name in demo.EXPECTED]


def test_the_demo_fails_when_the_item_added_event_lacks_the_flag(
        capsys: pytest.CaptureFixture[str]) -> None:
    arrived = _visit_events(demo.EXPECTED)
    for event in arrived:
        event["properties"].pop("$feature/checkout-layout", None)
    assert not demo._report(FLASK, arrived)
    assert "MISSING: $feature/checkout-layout on item added" in capsys.readouterr().out


def test_the_demo_shows_the_variant_on_the_item_added_event(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert demo._report(FLASK, _visit_events(demo.EXPECTED))
    [row] = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.split()[:2] == ["item", "added"]]
    assert row[-2:] == ["item_id=42", "checkout-layout=classic"]


FLASK = demo.Shop("Flask", "flask_app", "gunicorn", (), ())


def _visit_events(names: Iterable[str]) -> list[dict[str, Any]]:
    """The events of one visit to the Flask shop, in the order given."""
    events = []
    for index, name in enumerate(names):
        properties: dict[str, Any] = {"$session_id": "session-flask"}
        if name == "item added":
            properties.update({"item_id": 42, "$feature/checkout-layout": "classic"})
        if name == "$feature_flag_called":
            properties.update({"$feature_flag": "checkout-layout",
                               "$feature_flag_response": "classic"})
        events.append({"event": name, "distinct_id": "someone", "properties": properties,
                       "timestamp": f"2026-01-01T00:00:0{index}Z"})
    return events
