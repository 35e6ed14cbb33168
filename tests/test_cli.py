"""The command line: the demo (the README's first command) and argument handling."""

from __future__ import annotations

import pytest

from posthog_integrations.__main__ import main


def test_demo_delivers_every_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    output = capsys.readouterr().out
    assert "all 8 events arrived" in output
    assert "chain='ValueError <- KeyError'" in output
    assert "$session_id='session-7'" in output


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
