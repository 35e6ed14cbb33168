"""The command line: the demo (the README's first command) and argument handling."""

from __future__ import annotations

import sys

import pytest

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
