"""The three check commands print one report, with one set of exit statuses.

``posthog-integrations check``, ``python -m django posthog_check`` and ``flask posthog check`` each
run in a child process, as a user runs them, against the same local capture endpoint: each reads
the key and host from its own framework's settings, and all three must print the same report
lines (but the one naming where the settings came from), warn the same way, exit with 0
(delivered), 1 (sending failed) or 2 (nothing could be sent), keep the library's log lines out of
their output, and never show the API key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from posthog_integrations.__main__ import main
from posthog_integrations._version import VERSION
from posthog_integrations.check import CHECK_EVENT
from posthog_integrations.check_hazards import SERVERLESS_VARIABLES
from posthog_integrations.sink import LocalSink

PROJECT_KEY = "phc_Zq8vK2mWx9TtRb4LpN7yHd3sKQZ8VWX2"
PERSONAL_KEY = "phx_Gh5jQw2ErT8yUi1OpA6sDf4kPLM3RTY7"
REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("cli", "django", "flask")
SOURCES = {
    "cli": "the environment",
    "django": "the Django settings check_commands_settings",
    "flask": "the Flask app check_commands_app",
}
# Hazards every command should find in its environment, and warn about in the same words.
HAZARDS = {"UWSGI_MODULE": "shop.wsgi", "AWS_LAMBDA_FUNCTION_NAME": "checkout"}


@dataclasses.dataclass(frozen=True)
class Situation:
    name: str
    api_key: str | None
    endpoint_status: int | None  # what the endpoint answers; None: it accepts the event
    exit_status: int
    expected_lines: tuple[str, ...]  # each a whole line of the report


SITUATIONS = [
    Situation("delivered", PROJECT_KEY, None, 0, (
        "ok   API key: present (project key phc_...VWX2)",
        "ok   HTTP status: 200 (the event was accepted)",
        "ok   latency: N ms",
    )),
    Situation("rejected", PERSONAL_KEY, 401, 1, (
        "warn API key: present (phx_...RTY7), but phx_ is a personal API key: sending events "
        "needs the project API key (phc_...)",
        "FAIL HTTP status: 401 (the API key was rejected: use the project API key (phc_...), not "
        "a personal one)",
    )),
    Situation("no API key", None, None, 2, (
        "FAIL API key: missing: set POSTHOG_API_KEY or the API key setting",
        "PostHog check failed: nothing was sent (see FAIL above)",
    )),
]


@dataclasses.dataclass(frozen=True)
class Run:
    command: str
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def report(self) -> list[str]:
        """The report without its first line (where the settings came from), latencies as N."""
        lines = self.stdout.splitlines() or [""]
        source = f"PostHog check with the settings of {SOURCES[self.command]}"
        assert lines[0] == source, self.output
        return [re.sub(r"\b\d+ ms\b", "N ms", line) for line in lines[1:]]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PostHog settings and no server or platform variables from the machine running tests."""
    names = ["POSTHOG_API_KEY", "POSTHOG_HOST", "POSTHOG_DEBUG", "POSTHOG_DISABLED",
             "GUNICORN_CMD_ARGS", "DJANGO_SETTINGS_MODULE", "FLASK_APP", *SERVERLESS_VARIABLES]
    names += [name for name in os.environ if name.startswith("UWSGI_")]
    for name in names:
        monkeypatch.delenv(name, raising=False)


def write_projects(folder: Path, api_key: str | None, host: str) -> None:
    """A Flask app and Django settings (extending the test project's) with ``api_key``."""
    flask_config = {"POSTHOG_HOST": host, **({"POSTHOG_API_KEY": api_key} if api_key else {})}
    (folder / "check_commands_app.py").write_text(
        "from flask import Flask\n"
        "from posthog_integrations.flask import PostHog\n"
        "app = Flask('check_commands_app')\n"
        f"app.config.update({flask_config!r})\n"
        "PostHog(app)\n"
    )
    django_setting = {"HOST": host, **({"API_KEY": api_key} if api_key else {})}
    (folder / "check_commands_settings.py").write_text(
        "from tests.django.project.settings import *  # noqa: F403\n"
        f"POSTHOG = {django_setting!r}\n"
    )


def run_command(command: str, folder: Path, *arguments: str,
                environ: dict[str, str] | None = None) -> Run:
    """Run one check command in a child process, as a user would, from the repository root."""
    argv = {
        "cli": ["-m", "posthog_integrations", "check"],
        "django": ["-m", "django", "posthog_check", "--settings=check_commands_settings"],
        "flask": ["-m", "flask", "--app", "check_commands_app", "posthog", "check"],
    }[command]
    env = {**os.environ, **(environ or {}),
           "PYTHONPATH": os.pathsep.join([str(folder), str(REPO_ROOT)])}
    done = subprocess.run([sys.executable, *argv, *arguments], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=120, check=False)
    return Run(command, done.returncode, done.stdout, done.stderr)


def available(command: str) -> bool:
    if command != "django":
        return True
    try:
        import django
    except ImportError:
        return False
    return django.VERSION >= (5, 2)


def key_fragments(api_key: str) -> list[str]:
    """Every 8-character piece of the key: none may be in any output."""
    return [api_key[start:start + 8] for start in range(len(api_key) - 7)]


@pytest.mark.parametrize("situation", SITUATIONS, ids=lambda situation: situation.name)
def test_the_three_commands_print_the_same_report(situation: Situation, sink: LocalSink,
                                                  tmp_path: Path) -> None:
    write_projects(tmp_path, situation.api_key, sink.url)
    cli_environ = {"POSTHOG_HOST": sink.url,
                   **({"POSTHOG_API_KEY": situation.api_key} if situation.api_key else {})}
    runs = []
    for command in filter(available, COMMANDS):
        if situation.endpoint_status is not None:
            sink.script(situation.endpoint_status)
        runs.append(run_command(command, tmp_path, "--timeout", "10",
                                environ={**HAZARDS, **(cli_environ if command == "cli" else {})}))

    for run in runs:
        assert run.status == situation.exit_status, run
        report = run.report()
        for line in situation.expected_lines:
            assert line in report, (run.command, report)
        assert any(line.startswith("warn uWSGI: running under uWSGI (UWSGI_MODULE)")
                   for line in report), report
        assert any(line.startswith("warn serverless: AWS_LAMBDA_FUNCTION_NAME is set")
                   for line in report), report
        assert f"ok   host: {sink.url}" in report
        for fragment in key_fragments(situation.api_key or PROJECT_KEY):
            assert fragment not in run.output, (run.command, fragment)
    assert [run.report() for run in runs[1:]] == [runs[0].report()] * (len(runs) - 1)

    delivered = sink.events(event=CHECK_EVENT, api_key=situation.api_key)
    if situation.exit_status == 0:
        assert len(delivered) == len(runs)
    else:
        assert delivered == []
    if situation.api_key is None:
        assert sink.requests() == []


def test_the_library_keeps_its_log_lines_out_of_the_report(sink: LocalSink,
                                                           tmp_path: Path) -> None:
    """A rejected batch makes the sender log a warning: the report says it already."""
    write_projects(tmp_path, PROJECT_KEY, sink.url)
    environ = {"POSTHOG_API_KEY": PROJECT_KEY, "POSTHOG_HOST": sink.url}
    for command in filter(available, COMMANDS):
        sink.script(401)
        run = run_command(command, tmp_path, environ=environ if command == "cli" else None)
        assert run.status == 1, run
        assert "FAIL HTTP status: 401" in run.stdout
        assert "dropping a batch" not in run.output, (command, run.output)
        assert "posthog_integrations" not in run.stderr, (command, run.stderr)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("timeout", ["0", "soon"])
def test_a_bad_timeout_is_a_usage_error(command: str, timeout: str, sink: LocalSink,
                                        tmp_path: Path) -> None:
    if not available(command):
        pytest.skip("Django 5.2 is not installed")
    write_projects(tmp_path, PROJECT_KEY, sink.url)
    run = run_command(command, tmp_path, "--timeout", timeout)
    assert run.status == 2, run
    assert "positive number of seconds" in run.stderr
    assert sink.requests() == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"posthog-integrations {VERSION}\n"
