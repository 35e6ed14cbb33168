"""The ``sink`` command: its answer for capture requests (``--respond``) and its database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from posthog_integrations import Client
from posthog_integrations.sink import EventStore, LocalSink
from tests.sink.test_sink import KEY, REPO_ROOT, SHUTDOWN_TIMEOUT, SINK_CLI, make_event, post

STORED_IN = re.compile(r"events are stored in (.+) \((\d+) there now\)")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")


@contextmanager
def running_sink(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 ) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """Run the sink command; yield its URL, its banner's lines and the process."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", SINK_CLI, "--port", "0", "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=cwd)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("PostHog sink listening on "), first + proc.stderr.read()
        banner = [first]
        while "Ctrl-C" not in banner[-1]:
            banner.append(proc.stdout.readline())
        yield first.split()[-1], banner, proc
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def stored_in(banner: list[str]) -> Path:
    [match] = [m for m in map(STORED_IN.search, banner) if m]
    return Path(match.group(1))


# -- --respond --------------------------------------------------------------------------------


def test_respond_answers_every_capture_request_with_that_status() -> None:
    with LocalSink(respond=401) as sink:
        for path in ("/batch/", "/i/v0/e/", "/e"):
            response = post(sink, path, {"api_key": KEY, "batch": [make_event()]})
            assert response.status_code == 401
        v1 = post(sink, "/i/v1/analytics/events", {"batch": [make_event()]},
                  headers={"Authorization": f"Bearer {KEY}"})
        assert v1.status_code == 401
        assert "401" in v1.json()["detail"]
        assert sink.events() == []
        assert [r.status for r in sink.requests()] == [401] * 4
        # Flag evaluations are answered as usual.
        flags = requests.post(f"{sink.url}/flags/?v=2", json={"token": KEY, "distinct_id": "a"},
                              timeout=5)
        assert flags.status_code == 200
        # A scripted answer goes first; then the sink answers 401 again.
        sink.script(200)
        assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event("kept")]}).ok
        assert post(sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 401
        assert [e["event"] for e in sink.events()] == ["kept"]


def test_respond_503_makes_a_client_retry_then_give_up() -> None:
    with LocalSink(respond=503) as sink:
        client = Client(api_key=KEY, host=sink.url, retry_base_delay=0.01, max_retries=2)
        try:
            client.capture("retried", distinct_id="alice")
            client.flush(timeout=10)
        finally:
            client.shutdown(timeout=2)
        assert [r.status for r in sink.requests()] == [503, 503, 503]
        assert sink.events() == []


def test_respond_prints_a_line_per_refused_request(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalSink(respond=401, echo=True) as sink:
        batch = [make_event("one"), make_event("two")]
        assert post(sink, "/batch/", {"api_key": KEY, "batch": batch}).status_code == 401
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert line.split()[1:] == ["answered", "401:", "2", "events", "not", "stored", "/batch/"]
    assert KEY not in out + err


@pytest.mark.parametrize("status", [0, 200, 204, 302, 399, 600])
def test_respond_must_be_an_error_status(status: int) -> None:
    expected = f"respond must be an HTTP status from 400 to 599, not {status}"
    with pytest.raises(ValueError, match=expected):
        LocalSink(respond=status)


def test_cli_respond_401_makes_the_check_command_report_a_rejected_key(tmp_path: Path) -> None:
    with running_sink("--db", ":memory:", "--respond", "401", cwd=tmp_path) as (url, banner, _):
        assert any("answers every capture request with 401" in line for line in banner)
        env = {**os.environ, "POSTHOG_HOST": url, "POSTHOG_API_KEY": "phc_wrong_key_0123456789",
               "PYTHONPATH": str(REPO_ROOT)}
        check = subprocess.run([sys.executable, "-m", "posthog_integrations", "check"],
                               capture_output=True, text=True, env=env, timeout=60, check=False)
        assert check.returncode == 1, check.stdout + check.stderr
        assert "HTTP 401" in check.stdout
        assert "API key was rejected" in check.stdout


@pytest.mark.parametrize("value", ["200", "301", "600", "soon"])
def test_cli_refuses_a_respond_status_that_is_not_an_error(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SINK_CLI, "--db", ":memory:", "--respond", value],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 2
    assert "--respond" in result.stderr
    assert "400 to 599" in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout


# -- where the events are stored --------------------------------------------------------------


def test_the_database_defaults_to_the_user_data_directory(tmp_path: Path) -> None:
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    env = {"XDG_DATA_HOME": str(data), "HOME": str(tmp_path / "home")}
    with running_sink(cwd=project, env=env) as (url, banner, _):
        path = stored_in(banner)
        assert path == data / "posthog-integrations" / "events.sqlite3"
        assert path.is_file()
        event = make_event("kept")
        assert requests.post(f"{url}/batch/", json={"api_key": KEY, "batch": [event]},
                             timeout=5).ok
    assert list(project.iterdir()) == []
    store = EventStore(str(path))
    try:
        assert store.events() == [event]
    finally:
        store.close()


def test_the_database_falls_back_to_the_temp_directory(tmp_path: Path) -> None:
    project, temp = tmp_path / "project", tmp_path / "temp"
    project.mkdir()
    temp.mkdir()
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    env = {"XDG_DATA_HOME": str(not_a_directory), "HOME": str(not_a_directory),
           "TMPDIR": str(temp)}
    with running_sink(cwd=project, env=env) as (_url, banner, _):
        path = stored_in(banner)
        assert path.is_file()
        assert path.parent.parent == temp
    assert list(project.iterdir()) == []


def test_an_explicit_database_path_is_used(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "mine.sqlite3"
    db.parent.mkdir()
    with running_sink("--db", str(db), cwd=tmp_path) as (_url, banner, _):
        assert stored_in(banner) == db
        assert db.is_file()


def test_data_directory_follows_each_platform(tmp_path: Path) -> None:
    from posthog_integrations.sink.location import data_directory

    home = tmp_path / "home"
    assert data_directory("linux", {}, home) == home / ".local" / "share" / "posthog-integrations"
    assert data_directory("linux", {"XDG_DATA_HOME": "/xdg"}, home) == Path(
        "/xdg/posthog-integrations")
    # A relative XDG_DATA_HOME is invalid by the specification and ignored.
    assert data_directory("linux", {"XDG_DATA_HOME": "rel"}, home) == (
        home / ".local" / "share" / "posthog-integrations")
    assert data_directory("darwin", {}, home) == (
        home / "Library" / "Application Support" / "posthog-integrations")
    assert data_directory("win32", {"LOCALAPPDATA": str(tmp_path / "local")}, home) == (
        tmp_path / "local" / "posthog-integrations")
    assert data_directory("win32", {}, home) == home / "AppData" / "Local" / "posthog-integrations"
