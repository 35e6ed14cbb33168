"""The command line: the demo (the README's first command) and argument handling."""

from __future__ import annotations

import sys

import pytest

from posthog_integrations import demo
from posthog_integrations.__main__ import main


def test_the_demo_serves_every_shop_and_every_event_arrives(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    output = capsys.readouterr().out
    shops = 3 if sys.version_info >= (3, 10) else 2  # no Django 5.2 before Python 3.10
    assert f"every expected event arrived from all {shops} shops" in output
    rows = [line.split() for line in output.splitlines() if "session-flask" in line]
    assert [row[0] for row in rows] == [
        "$pageview", "signed", "item", "$exception", "report"]
    assert rows[2][2:] == ["user-flask-fan", "session-flask", "/cart/<int:item_id>",
                           "item_id=42"]
    assert "RuntimeError <- ConnectionError (unhandled)" in output


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2


def test_the_demo_shows_events_in_the_visits_order_whatever_order_they_arrived_in(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A threaded server can capture a request's page view after the next request's events.
    shop = demo.Shop("Flask", "flask_app", "gunicorn", (), ())
    arrived = [
        {"event": name, "distinct_id": "someone", "timestamp": f"2026-01-01T00:00:0{index}Z",
         "properties": {"$session_id": "session-flask"}}
        for index, name in enumerate(reversed(demo.EXPECTED))
    ]
    assert demo._report(shop, arrived)
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()
            if "session-flask" in line]
    assert rows == [name.split()[0] for name in demo.EXPECTED]
