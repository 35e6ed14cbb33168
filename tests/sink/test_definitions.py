"""The sink's ``GET /flags/definitions``, answered from a definitions file, over loopback HTTP."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from posthog_integrations.sink import LocalSink, ScriptedResponse
from tests.sink.test_sink import KEY, REPO_ROOT, SHUTDOWN_TIMEOUT, SINK_CLI

SECRET = "phx_sink_definitions_secret_0123456789"
DEFINITIONS: dict[str, Any] = {
    "flags": [{"id": 1, "key": "beta", "active": True,
               "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}],
    "group_type_mapping": {"0": "company"},
    "cohorts": {},
}


def get(sink: LocalSink, *, secret: str | None = SECRET, etag: str | None = None,
        query: str = f"token={KEY}&send_cohorts") -> requests.Response:
    """GET the definitions as the SDK does."""
    headers = {}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    if etag is not None:
        headers["If-None-Match"] = etag
    return requests.get(f"{sink.url}/flags/definitions?{query}", headers=headers, timeout=5)


def write_definitions(path: Path, data: Any) -> None:
    """Write ``data`` and move the mtime on, so a reload never depends on the clock's grain."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.utime(path, ns=(previous + 10**9, previous + 10**9))


@pytest.fixture
def definitions_sink() -> Iterator[LocalSink]:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


def test_the_definitions_come_with_a_strong_etag(definitions_sink: LocalSink) -> None:
    response = get(definitions_sink)
    assert response.status_code == 200
    assert response.json() == DEFINITIONS
    etag = response.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert len(etag) > 10
    assert get(definitions_sink).headers["ETag"] == etag  # the same content, the same tag


@pytest.mark.parametrize("form", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_matching_if_none_match_is_304_without_a_body(definitions_sink: LocalSink,
                                                         form: str) -> None:
    etag = get(definitions_sink).headers["ETag"]
    response = get(definitions_sink, etag=form.format(etag=etag))
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag


def test_another_etag_gets_the_definitions(definitions_sink: LocalSink) -> None:
    response = get(definitions_sink, etag='"stale"')
    assert response.status_code == 200
    assert response.json() == DEFINITIONS


@pytest.mark.parametrize("secret", [None, "", "Basic abc"])
def test_no_bearer_authorization_is_401(definitions_sink: LocalSink, secret: str | None) -> None:
    headers = {} if secret is None else {"Authorization": secret}
    response = requests.get(f"{definitions_sink.url}/flags/definitions?token={KEY}",
                            headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"
    assert "Bearer" in response.json()["detail"]


def test_no_project_token_is_401(definitions_sink: LocalSink) -> None:
    response = get(definitions_sink, query="send_cohorts")
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def test_without_definitions_there_is_no_flag() -> None:
    with LocalSink() as sink:
        response = get(sink)
    assert response.status_code == 200
    assert response.json()["flags"] == []


def test_requests_are_counted_and_recorded_with_their_headers(
    definitions_sink: LocalSink,
) -> None:
    etag = get(definitions_sink).headers["ETag"]
    get(definitions_sink, etag=etag)
    get(definitions_sink, secret=None)
    assert definitions_sink.stats()["definitions_requests"] == 3
    first, second, third = definitions_sink.requests()
    assert first.path == "/flags/definitions"
    assert (first.status, second.status, third.status) == (200, 304, 401)
    assert first.headers["authorization"] == f"Bearer {SECRET}"
    assert second.headers["if-none-match"] == etag
    assert first.api_key == KEY
    assert "send_cohorts" in first.query


def test_scripted_answers_go_first_then_the_definitions(definitions_sink: LocalSink) -> None:
    definitions_sink.script_definitions(401, 402, ScriptedResponse(500, body=b"down"))
    assert [get(definitions_sink).status_code for _ in range(4)] == [401, 402, 500, 200]
    # Scripted answers for /flags/definitions leave capture and /flags alone.
    definitions_sink.script_definitions(ScriptedResponse(200, body=b"not json"))
    assert get(definitions_sink).content == b"not json"


def test_a_scripted_2xx_without_a_body_answers_from_the_file_after_its_delay(
    definitions_sink: LocalSink,
) -> None:
    definitions_sink.script_definitions(ScriptedResponse(200, delay=0.2))
    response = get(definitions_sink)
    assert response.status_code == 200
    assert response.json() == DEFINITIONS
    assert response.elapsed.total_seconds() >= 0.2


def test_the_file_is_re_read_when_it_changes(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "definitions.json"
    write_definitions(path, DEFINITIONS)
    with LocalSink(definitions=path) as sink:
        first = get(sink)
        changed = {**DEFINITIONS, "flags": [{"key": "other", "active": True, "filters": {}}]}
        write_definitions(path, changed)
        second = get(sink, etag=first.headers["ETag"])
        assert second.status_code == 200
        assert second.json() == changed
        assert second.headers["ETag"] != first.headers["ETag"]
        with caplog.at_level(logging.WARNING, logger="posthog_integrations.sink"):
            write_definitions(path, '{"flags": {"not": "a list"}}')
            third = get(sink, etag=second.headers["ETag"])
    assert third.status_code == 304  # the last good definitions stay
    [warning] = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and str(path) in r.getMessage()]
    assert "the definitions' flags are not a list" in warning
    assert "last good" in warning


@pytest.mark.parametrize(("text", "fragment"), [
    ("{", "not valid JSON"), ("[]", "not a JSON object"), ('{"flags": 3}', "not a list"),
    ("NaN", "not a JSON number"),
])
def test_an_unreadable_file_is_a_value_error_naming_it(tmp_path: Path, text: str,
                                                       fragment: str) -> None:
    path = tmp_path / "definitions.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment) as raised:
        LocalSink(definitions=path)
    assert str(path) in str(raised.value)


def test_a_missing_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        LocalSink(definitions=tmp_path / "missing.json")


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_the_command_serves_a_definitions_file(tmp_path: Path) -> None:
    path = tmp_path / "definitions.json"
    write_definitions(path, DEFINITIONS)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", ":memory:", "--quiet",
         "--definitions", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        banner = [proc.stdout.readline() for _ in range(5)]
        [line] = [line for line in banner if str(path) in line]
        assert "1 flag definition" in line
        response = requests.get(f"{url}/flags/definitions?token={KEY}&send_cohorts",
                                headers={"Authorization": f"Bearer {SECRET}"}, timeout=5)
        assert response.json() == DEFINITIONS
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert SECRET not in _out + err


def test_the_command_refuses_an_invalid_definitions_file_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "definitions.json"
    path.write_text("[]")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", ":memory:",
         "--definitions", str(path)],
        capture_output=True, text=True, env=env, timeout=SHUTDOWN_TIMEOUT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"definitions file {path}: the definitions are a list" in proc.stderr
    assert "Traceback" not in proc.stderr
