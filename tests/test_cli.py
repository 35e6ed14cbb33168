"""The command line: the demo (the README's first command) and argument handling."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from posthog_integrations import demo
from posthog_integrations.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    # The Django shop's order view enqueues a Celery task: with redis-server on PATH, a real
    # prefork worker runs it; its event arrives as the visitor who placed the order.
    assert ("Celery: starting redis-server on port" in output) == (
        shutil.which("redis-server") is not None)
    assert_the_task_event_is_the_visitors(output)


def assert_the_task_event_is_the_visitors(output: str) -> None:
    rows = [line.split() for line in output.splitlines() if "session-django" in line]
    assert [row[0] for row in rows] == [
        "$pageview", "signed", "$feature_flag_called", "item", "order", "order", "$exception",
        "report"]
    placed, confirmation = rows[4], rows[5]
    assert placed[:5] == ["order", "placed", "user-django-fan", "session-django", "/orders"]
    assert confirmation[:6] == ["order", "confirmation", "sent", "user-django-fan",
                                "session-django", "-"]
    order_id = next(field for field in placed if field.startswith("order_id="))
    assert confirmation[6:] == [order_id, "item_id=42", "(task",
                                "shop.tasks.send_order_confirmation)"]


def test_without_redis_server_the_demo_says_so_and_runs_the_task_eagerly(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server there; the demo needs no PATH
    assert main(["demo"]) == 0
    output = capsys.readouterr().out
    notes = [line.strip() for line in output.splitlines() if "redis-server" in line]
    assert notes == ["redis-server is not on PATH: the Celery task runs eagerly, in the request "
                     "(CELERY_TASK_ALWAYS_EAGER=1)"]
    assert "every expected event arrived from all 3 shops" in output
    assert_the_task_event_is_the_visitors(output)


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


def test_the_demo_fails_when_the_task_event_is_not_the_visitors(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A worker that ran the task without the request's context: the event has the session (a
    # tag the task was given by hand, say) but not the distinct id of whoever ordered.
    arrived = _visit_events(DJANGO.expected, session="session-django")
    for event in arrived:
        if event["event"] in demo.ORDER_EVENTS:
            event["properties"]["order_id"] = 1001
    assert demo._report(DJANGO, arrived)
    capsys.readouterr()
    [task] = [event for event in arrived if event["event"] == demo.TASK_EVENT]
    task["distinct_id"] = "a-worker-process"
    assert not demo._report(DJANGO, arrived)
    assert ("MISSING: the visitor's distinct id on order confirmation sent (it has "
            "a-worker-process)") in capsys.readouterr().out


FLASK = demo.Shop("Flask", "flask_app", "gunicorn", (), ())
DJANGO = demo.Shop("Django", "django_app", "gunicorn", (), (), celery=True)


def _visit_events(names: Iterable[str],
                  session: str = "session-flask") -> list[dict[str, Any]]:
    """The events of one visit to a shop (the Flask one by default), in the order given."""
    events = []
    for index, name in enumerate(names):
        properties: dict[str, Any] = {"$session_id": session}
        if name == "item added":
            properties.update({"item_id": 42, "$feature/checkout-layout": "classic"})
        if name == "$feature_flag_called":
            properties.update({"$feature_flag": "checkout-layout",
                               "$feature_flag_response": "classic"})
        events.append({"event": name, "distinct_id": "someone", "properties": properties,
                       "timestamp": f"2026-01-01T00:00:0{index}Z"})
    return events


# -- without werkzeug ------------------------------------------------------------------------

# The command line, run as ``python -c RUN_MAIN <arguments>``; with BLOCK_WERKZEUG first,
# werkzeug cannot be imported, as after `pip install posthog-integrations` without [sink].
RUN_MAIN = (
    "import sys\n"
    "from posthog_integrations.__main__ import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
BLOCK_WERKZEUG = "import sys\nsys.modules['werkzeug'] = None  # every import of it fails\n"
SINK_OPTIONS = ("--host", "--port", "--db", "--quiet", "--flags", "--respond")


def _command(*args: str, werkzeug: bool = True) -> subprocess.CompletedProcess[str]:
    code = RUN_MAIN if werkzeug else BLOCK_WERKZEUG + RUN_MAIN
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60,
                          check=False)


def test_the_sink_help_lists_every_option_without_werkzeug() -> None:
    without = _command("sink", "--help", werkzeug=False)
    assert without.returncode == 0, without.stderr
    for option in SINK_OPTIONS:
        assert option in without.stdout
    assert "posthog-integrations[sink]" in without.stdout  # the help names the extra too
    assert without.stdout == _command("sink", "--help").stdout


@pytest.mark.parametrize("command", [["sink", "--port", "0"], ["demo"]])
def test_without_werkzeug_the_sink_and_demo_name_the_extra_in_one_line(
        command: list[str]) -> None:
    result = _command(*command, werkzeug=False)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "werkzeug" in line
    assert line.endswith("pip install './posthog-integrations[sink]')")


# -- the demo as a user runs it ----------------------------------------------------------------

STARTING = re.compile(r"starting \w+ on port (\d+)")
DEMO_TIMEOUT = 120  # the demo takes a few seconds; far more on a machine this busy


def _demo_env() -> dict[str, str]:
    """The environment without this interpreter's directory on PATH, as outside a venv."""
    bin_dir = os.path.dirname(sys.executable)
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and os.path.abspath(d) != bin_dir)
    return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def _processes() -> dict[int, tuple[int, str]]:
    """Every process's parent and state, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry.name)] = (int(parent), state)
    return found


def _descendants(pid: int) -> set[int]:
    processes = _processes()
    found: set[int] = set()
    parents = {pid}
    while parents:
        children = {child for child, (parent, _) in processes.items() if parent in parents}
        parents = children - found
        found |= children
    return found


def _running(pids: set[int]) -> set[int]:
    processes = _processes()
    return {pid for pid in pids if pid in processes and processes[pid][1] != "Z"}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("signum", "whole_group", "message"), [
    (signal.SIGINT, False, "interrupted"),
    # Ctrl-C in a terminal signals the whole foreground process group.
    (signal.SIGINT, True, "interrupted"),
    (signal.SIGTERM, False, "stopped by SIGTERM"),
], ids=["ctrl-c", "ctrl-c-in-a-terminal", "sigterm"])
def test_interrupting_the_demo_stops_every_server_without_a_traceback(
        tmp_path: Path, signum: int, whole_group: bool, message: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "posthog_integrations", "demo"],
                            cwd=tmp_path, env=_demo_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        while not printed or "sending a visit" not in printed[-1]:
            printed.append(proc.stdout.readline())
            assert printed[-1], "".join(printed) + proc.communicate()[1]
        ports = [int(m.group(1)) for m in map(STARTING.search, printed) if m]
        servers = _descendants(proc.pid)
        assert len(ports) >= 2
        assert len(servers) >= len(ports)
        assert all(map(_listening, ports))
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEMO_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 128 + signum, out + err
    assert "Traceback" not in out + err
    assert "every expected event arrived" not in out  # it was interrupted during the visits
    expected = f"posthog-integrations demo: {message}; its servers are stopped"
    assert err.strip().splitlines() == [expected]
    assert _running(servers) == set()
    assert not any(map(_listening, ports))


def test_the_demos_closing_hint_works_from_the_directory_it_was_run_in(tmp_path: Path) -> None:
    # The console script's directory is not on PATH, as when the venv is not activated.
    env = _demo_env()
    first = subprocess.run([sys.executable, "-m", "posthog_integrations", "demo"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT,
                           check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    [hint] = [line for line in first.stdout.splitlines() if "to browse them in the viewer" in line]
    command = shlex.split(hint.split(": ", 1)[1])
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "browse them in the viewer:" not in lines[-1]:
            lines.append(proc.stdout.readline())
            assert lines[-1], "".join(lines) + proc.communicate()[1]
        viewer = lines[-1].split("viewer: ", 1)[1].split()[0]
        answer = json.loads(urllib.request.urlopen(f"{viewer}api/events", timeout=10).read())
        assert {e["event"] for e in answer["events"]} >= set(demo.EXPECTED)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=DEMO_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """`posthog-integrations check | head -1`: the pipe closes before the report is written."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("POSTHOG_")}
    process = subprocess.Popen([sys.executable, "-m", "posthog_integrations", "check"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # before the interpreter has even started: every write fails
    with process.stderr:
        stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
