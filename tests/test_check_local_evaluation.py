"""The check commands' local-evaluation lines: given a secret key, the flag definitions are
loaded once from a real endpoint on loopback, counted, and each flag local evaluation can never
decide is listed with why; a rejected key or an exhausted quota is a FAIL. The secret key is
checked by substring: it is never printed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from posthog_integrations.__main__ import main
from posthog_integrations.sink import LocalSink

KEY = "phc_check_local_project_0123456789abcdef"
SECRET = "phx_check_local_secret_0123456789abcdef"
DEFINITIONS: dict[str, Any] = {
    "flags": [
        {"id": 1, "key": "everyone", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
        {"id": 2, "key": "pro-plan", "active": True,
         "filters": {"groups": [{"properties": [
             {"key": "plan", "value": ["pro"], "operator": "exact", "type": "person"}],
             "rollout_percentage": 100}]}},
        {"id": 3, "key": "beta-testers", "active": True,
         "filters": {"groups": [{"properties": [
             {"key": "id", "value": 7, "type": "cohort"}], "rollout_percentage": 100}]}},
        {"id": 4, "key": "sticky", "active": True, "ensure_experience_continuity": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}},
    ],
    "group_type_mapping": {},
    "cohorts": {},  # a static cohort is not sent: only PostHog knows its members
}


@pytest.fixture
def sink() -> Iterator[LocalSink]:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


@pytest.fixture
def environ(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POSTHOG_DEBUG", "POSTHOG_DISABLED", "DJANGO_SETTINGS_MODULE",
                 "POSTHOG_SECRET_KEY", "POSTHOG_FLAG_DEFINITIONS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", sink.url)


def lines(capsys: pytest.CaptureFixture[str], topic: str) -> list[str]:
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert SECRET not in output
    assert SECRET[4:] not in output
    assert SECRET[-12:] not in output
    return [line for line in output.splitlines() if f"{topic}:" in line]


def definitions_polls(sink: LocalSink) -> int:
    return sum(1 for request in sink.requests() if request.path == "/flags/definitions")


@pytest.mark.usefixtures("environ")
def test_counts_the_flags_and_lists_those_that_need_posthog(
        sink: LocalSink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POSTHOG_SECRET_KEY", SECRET)
    assert main(["check"]) == 0
    found = lines(capsys, "local evaluation")
    assert found[0].startswith("ok")
    assert "4 flags, 2 evaluated locally" in found[0]
    warned = sorted(found[1:])
    assert len(warned) == 2
    assert all(line.startswith("warn") for line in warned)
    assert "'beta-testers'" in warned[0]
    assert "static cohort" in warned[0]
    assert "'sticky'" in warned[1]
    assert "experience continuity" in warned[1]
    assert all("billable" in line for line in warned)
    assert definitions_polls(sink) == 1


@pytest.mark.usefixtures("environ")
def test_a_rejected_secret_key_is_a_fail_line(
        sink: LocalSink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POSTHOG_SECRET_KEY", SECRET)
    sink.script_definitions(401)
    assert main(["check"]) == 1
    [line] = lines(capsys, "local evaluation")
    assert line.startswith("FAIL")
    assert "401" in line
    assert "secret key" in line


@pytest.mark.usefixtures("environ")
def test_an_exhausted_quota_is_a_fail_line(
        sink: LocalSink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POSTHOG_SECRET_KEY", SECRET)
    sink.script_definitions(402)
    assert main(["check"]) == 1
    [line] = lines(capsys, "local evaluation")
    assert line.startswith("FAIL")
    assert "402" in line
    assert "quota" in line


@pytest.mark.usefixtures("environ")
def test_without_a_secret_key_no_definitions_are_asked_for(
        sink: LocalSink, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    [line] = lines(capsys, "local evaluation")
    assert line.startswith("ok")
    assert "no secret key" in line
    assert definitions_polls(sink) == 0


@pytest.mark.usefixtures("environ")
def test_the_flask_command_reads_the_secret_key_from_app_config(
        sink: LocalSink) -> None:
    from flask import Flask

    from posthog_integrations.flask import PostHog

    app = Flask(__name__)
    app.config.update(POSTHOG_API_KEY=KEY, POSTHOG_HOST=sink.url, POSTHOG_SECRET_KEY=SECRET)
    extension = PostHog(app)
    try:
        result = app.test_cli_runner().invoke(args=["posthog", "check"])
    finally:
        extension.client.shutdown(timeout=2)
    assert result.exit_code == 0, result.output
    assert "ok   local evaluation: 4 flags, 2 evaluated locally" in result.output
    assert SECRET not in result.output
    assert definitions_polls(sink) == 1
