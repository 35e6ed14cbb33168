"""The sink's ``/flags`` endpoint, answered from a flags file, over real loopback HTTP."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from posthog_integrations.sink import LocalSink, ScriptedResponse
from posthog_integrations.sink.body import MAX_BODY_BYTES
from tests.sink.test_sink import KEY, REPO_ROOT, SHUTDOWN_TIMEOUT, SINK_CLI, make_event, post

FLAGS: dict[str, Any] = {
    "flags": {"new-checkout": "test", "dark-mode": True, "beta": False},
    "payloads": {"new-checkout": {"color": "blue"}, "beta": [1, 2]},
    "distinct_ids": {"user-42": {"new-checkout": "control", "beta": True}},
}


def ask(
    sink: LocalSink,
    distinct_id: str = "someone",
    *,
    path: str = "/flags/?v=2",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> requests.Response:
    """POST a /flags request shaped like the SDK's."""
    body = {
        "token": KEY,
        "distinct_id": distinct_id,
        "groups": {},
        "group_properties": {},
        "person_properties": {},
        "geoip_disable": False,
        **fields,
    }
    return post(sink, path, body, headers=headers)


def values(response: requests.Response) -> dict[str, Any]:
    """``{key: variant or enabled}`` of a v2 answer."""
    assert response.status_code == 200, response.text
    flags = response.json()["flags"]
    return {k: r["variant"] if r["variant"] is not None else r["enabled"] for k, r in flags.items()}


@pytest.fixture
def flag_sink() -> Iterator[LocalSink]:
    with LocalSink(flags=FLAGS) as running:
        yield running


def write_flags(path: Path, config: Any) -> None:
    """Write ``config`` and move the file's mtime on, so a reload never depends on clock grain."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    os.utime(path, ns=(previous + 10**9, previous + 10**9))


# -- the answer -------------------------------------------------------------------------------


def test_answer_has_the_v2_shape(flag_sink: LocalSink) -> None:
    before = int(time.time() * 1000)
    response = ask(flag_sink)
    after = int(time.time() * 1000)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"flags", "errorsWhileComputingFlags", "requestId", "evaluatedAt"}
    assert answer["errorsWhileComputingFlags"] is False
    assert str(uuid.UUID(answer["requestId"])) == answer["requestId"]
    assert before <= answer["evaluatedAt"] <= after
    assert ask(flag_sink).json()["requestId"] != answer["requestId"]

    flags = answer["flags"]
    assert list(flags) == ["new-checkout", "dark-mode", "beta"]
    checkout = flags["new-checkout"]
    assert set(checkout) == {"key", "enabled", "variant", "reason", "metadata", "failed"}
    assert checkout["key"] == "new-checkout"
    assert (checkout["enabled"], checkout["variant"], checkout["failed"]) == (True, "test", False)
    assert checkout["reason"]["code"] == "condition_match"
    assert isinstance(checkout["reason"]["description"], str)
    metadata = checkout["metadata"]
    assert set(metadata) == {"id", "version", "payload", "description"}
    assert isinstance(metadata["id"], int)
    assert metadata["version"] == 1
    assert isinstance(metadata["payload"], str)  # JSON-encoded, as PostHog sends it
    assert json.loads(metadata["payload"]) == {"color": "blue"}
    assert isinstance(metadata["description"], str)

    dark = flags["dark-mode"]
    assert (dark["enabled"], dark["variant"], dark["metadata"]["payload"]) == (True, None, None)
    beta = flags["beta"]
    assert (beta["enabled"], beta["variant"], beta["failed"]) == (False, None, False)
    assert beta["reason"]["code"] != "condition_match"
    # A disabled flag carries no payload, as PostHog does.
    assert beta["metadata"]["payload"] is None
    assert len({r["metadata"]["id"] for r in flags.values()}) == 3


def test_per_distinct_id_values_win_over_the_defaults(flag_sink: LocalSink) -> None:
    assert values(ask(flag_sink, "someone")) == {
        "new-checkout": "test", "dark-mode": True, "beta": False
    }
    special = ask(flag_sink, "user-42").json()["flags"]
    assert special["new-checkout"]["variant"] == "control"
    assert special["dark-mode"]["enabled"] is True  # not overridden: the default
    assert special["beta"]["enabled"] is True
    assert json.loads(special["beta"]["metadata"]["payload"]) == [1, 2]
    # The reason says where the value came from.
    assert special["new-checkout"]["reason"] != ask(flag_sink).json()["flags"]["new-checkout"][
        "reason"
    ]


def test_flag_keys_to_evaluate_limits_the_answer(flag_sink: LocalSink) -> None:
    only = ask(flag_sink, "user-42", flag_keys_to_evaluate=["beta", "no-such-flag"])
    assert values(only) == {"beta": True}
    assert values(ask(flag_sink, flag_keys_to_evaluate=[])) == {}
    everything = ask(flag_sink, flag_keys_to_evaluate=None)
    assert set(values(everything)) == {"new-checkout", "dark-mode", "beta"}


@pytest.mark.parametrize("path", ["/flags/?v=2", "/flags?v=2", "/flags/", "/flags?v=4"])
def test_without_a_flags_file_every_flag_is_unknown(path: str) -> None:
    with LocalSink() as sink:
        response = ask(sink, path=path)
        assert response.status_code == 200
        answer = response.json()
        assert answer["flags"] == {}
        assert answer["errorsWhileComputingFlags"] is False
        assert "quotaLimited" not in answer
        uuid.UUID(answer["requestId"])


@pytest.mark.parametrize("encoding", ["header", "gzip-js"])
def test_gzip_bodies_are_read(flag_sink: LocalSink, encoding: str) -> None:
    body = {"api_key": KEY, "distinct_id": "user-42", "flag_keys_to_evaluate": ["new-checkout"]}
    # post() adds ?compression= itself for gzip-js.
    path = "/flags/?v=2" if encoding == "header" else "/flags/"
    response = post(flag_sink, path, body, encoding=encoding)
    assert values(response) == {"new-checkout": "control"}
    [recorded] = flag_sink.requests()
    assert recorded.gzip is True
    assert recorded.body == body


def test_api_key_is_accepted_in_place_of_token(flag_sink: LocalSink) -> None:
    response = post(flag_sink, "/flags/?v=2", {"api_key": KEY, "distinct_id": "user-42"})
    assert values(response)["new-checkout"] == "control"
    assert flag_sink.requests()[-1].api_key == KEY


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"distinct_id": "a"}, 401, "token"),
        ({"token": KEY}, 400, "distinct_id"),
        ({"token": KEY, "distinct_id": ""}, 400, "distinct_id"),
        ({"token": KEY, "distinct_id": "a", "flag_keys_to_evaluate": "beta"}, 400,
         "flag_keys_to_evaluate"),
        ([{"token": KEY}], 400, "object"),
    ],
)
def test_malformed_requests_are_refused_clearly(
    flag_sink: LocalSink, body: Any, status: int, fragment: str
) -> None:
    response = post(flag_sink, "/flags/?v=2", body)
    assert response.status_code == status
    assert fragment in response.json()["detail"]
    assert KEY not in response.text


def test_invalid_json_is_400(flag_sink: LocalSink) -> None:
    response = requests.post(flag_sink.url + "/flags/?v=2", data=b"{nope", timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"


def test_flags_requests_are_recorded_and_counted_but_store_no_event(
    flag_sink: LocalSink,
) -> None:
    assert flag_sink.stats()["flags_requests"] == 0
    ask(flag_sink, "user-42", flag_keys_to_evaluate=["beta"], person_properties={"plan": "pro"})
    ask(flag_sink, "someone", path="/flags?v=2")
    first, second = flag_sink.requests()
    assert (first.path, first.query, first.status) == ("/flags/", "v=2", 200)
    assert first.api_key == KEY
    assert first.body["distinct_id"] == "user-42"
    assert first.body["person_properties"] == {"plan": "pro"}
    assert first.body["flag_keys_to_evaluate"] == ["beta"]
    assert first.events == []
    assert second.path == "/flags"
    assert flag_sink.stats()["flags_requests"] == 2
    assert flag_sink.store.count() == 0
    # Capture requests are not counted as flags requests.
    post(flag_sink, "/batch/", {"api_key": KEY, "batch": [make_event()]})
    assert flag_sink.stats()["flags_requests"] == 2
    flag_sink.clear()
    assert flag_sink.stats()["flags_requests"] == 0


# -- scripted answers ------------------------------------------------------------------------


def test_scripted_flags_answers_come_first_then_the_flags(flag_sink: LocalSink) -> None:
    legacy = json.dumps({"featureFlags": {"beta": "x"}, "featureFlagPayloads": {}}).encode()
    flag_sink.script_flags(502, ScriptedResponse(429, retry_after="3"),
                           ScriptedResponse(200, body=legacy))
    first, second, third, fourth = (ask(flag_sink) for _ in range(4))
    assert first.status_code == 502
    assert (second.status_code, second.headers["Retry-After"]) == (429, "3")
    assert third.json() == json.loads(legacy)
    assert values(fourth)["new-checkout"] == "test"
    assert [r.status for r in flag_sink.requests()] == [502, 429, 200, 200]
    assert flag_sink.stats()["flags_requests"] == 4


def test_flags_and_capture_scripts_are_separate(flag_sink: LocalSink) -> None:
    flag_sink.script(503)
    flag_sink.script_flags(ScriptedResponse(drop_connection=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        ask(flag_sink)
    assert post(flag_sink, "/batch/", {"api_key": KEY, "batch": [make_event()]}).status_code == 503
    assert ask(flag_sink).status_code == 200


def test_a_scripted_delay_still_answers_with_the_flags(flag_sink: LocalSink) -> None:
    flag_sink.script_flags(ScriptedResponse(delay=0.2))
    started = time.monotonic()
    response = ask(flag_sink, "user-42")
    assert time.monotonic() - started >= 0.2
    assert values(response)["new-checkout"] == "control"


# -- the flags file ---------------------------------------------------------------------------


def test_a_path_is_read_and_re_read_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, FLAGS)
    with LocalSink(flags=str(path)) as sink:
        first = ask(sink).json()["flags"]
        assert first["new-checkout"]["variant"] == "test"
        write_flags(path, {**FLAGS, "flags": {**FLAGS["flags"], "new-checkout": "wide"}})
        second = ask(sink).json()["flags"]
        assert second["new-checkout"]["variant"] == "wide"
        # Only the flag that changed gets a new version; ids stay.
        assert second["new-checkout"]["metadata"]["version"] == 2
        assert second["dark-mode"]["metadata"]["version"] == 1
        assert second["new-checkout"]["metadata"]["id"] == first["new-checkout"]["metadata"]["id"]
        write_flags(path, {"flags": {"dark-mode": False}})
        assert values(ask(sink)) == {"dark-mode": False}
    with LocalSink(flags=path) as sink:  # a Path works too
        assert values(ask(sink)) == {"dark-mode": False}


def test_an_invalid_edit_keeps_the_last_good_values_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, FLAGS)
    caplog.set_level(logging.INFO, logger="posthog_integrations.sink")
    with LocalSink(flags=path) as sink:
        write_flags(path, '{"flags": {"new-checkout": 3}}')
        for _ in range(3):
            assert values(ask(sink))["new-checkout"] == "test"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        message = warnings[0].getMessage()
        assert str(path) in message
        assert "new-checkout" in message
        assert "last good" in message
        path.unlink()
        assert values(ask(sink))["new-checkout"] == "test"
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2
        write_flags(path, {"flags": {"new-checkout": "fixed"}})
        assert values(ask(sink)) == {"new-checkout": "fixed"}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"flag": {"a": True}}, "unknown key 'flag'"),
        ({"flags": ["a"]}, "'flags' must be an object"),
        ({"flags": {"a": 1}}, "flags.a"),
        ({"flags": {"a": None}}, "true, false or a variant"),
        ({"flags": {"a": ""}}, "flags.a"),
        ({"flags": {"": True}}, "flag key"),
        ({"flags": {"a": True}, "payloads": {"b": 1}}, "payloads.b"),
        ({"flags": {"a": True}, "distinct_ids": {"u": {"b": True}}}, "distinct_ids.u.b"),
        ({"flags": {"a": True}, "distinct_ids": {"u": {"a": 2}}}, "distinct_ids.u.a"),
        ({"flags": {"a": True}, "distinct_ids": {"u": True}}, "distinct_ids.u"),
        ({"flags": {"a": True}, "distinct_ids": []}, "'distinct_ids' must be an object"),
    ],
)
def test_invalid_configurations_raise_value_error(
    tmp_path: Path, config: Any, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        LocalSink(flags=config)
    path = tmp_path / "flags.json"
    write_flags(path, config)
    with pytest.raises(ValueError, match=str(path)) as raised:
        LocalSink(flags=path)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{nope", "not valid JSON"), ('{"flags": {"a": true}, "payloads": {"a": NaN}}', "NaN")],
)
def test_unparseable_files_raise_value_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, text)
    with pytest.raises(ValueError, match=fragment):
        LocalSink(flags=path)


def test_a_missing_file_raises_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        LocalSink(flags=tmp_path / "absent.json")


# -- protections ------------------------------------------------------------------------------


def test_flags_requests_get_the_host_check(flag_sink: LocalSink) -> None:
    port = urlsplit(flag_sink.url).port
    response = ask(flag_sink, headers={"Host": f"evil.example:{port}"})
    assert response.status_code == 421
    assert "flags" not in response.json()
    assert flag_sink.stats()["refused_host"] == 1
    assert flag_sink.requests() == []
    assert flag_sink.stats()["flags_requests"] == 0
    assert ask(flag_sink, headers={"Host": f"localhost:{port}"}).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
def test_cross_site_flags_requests_are_403(flag_sink: LocalSink, headers: dict[str, str]) -> None:
    response = ask(flag_sink, headers=headers)
    assert response.status_code == 403
    assert "flags" not in response.json()
    assert flag_sink.stats()["refused_cross_site"] == 1
    assert flag_sink.requests() == []


def test_oversized_flags_bodies_are_413(flag_sink: LocalSink) -> None:
    body = json.dumps({"token": KEY, "distinct_id": "a", "pad": "x" * MAX_BODY_BYTES}).encode()
    response = requests.post(flag_sink.url + "/flags/?v=2", data=body, timeout=30)
    assert response.status_code == 413
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1) + b"{}")
    inflated = requests.post(
        flag_sink.url + "/flags/?v=2",
        data=bomb,
        headers={"Content-Encoding": "gzip"},
        timeout=30,
    )
    assert inflated.status_code == 413
    assert flag_sink.stats()["refused_too_large"] == 2
    assert flag_sink.requests() == []


def test_decide_is_not_answered(flag_sink: LocalSink) -> None:
    assert ask(flag_sink, path="/decide/?v=3").status_code == 404


# -- the command ------------------------------------------------------------------------------


def _run_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", ":memory:", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_cli_answers_flags_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, FLAGS)
    proc = _run_cli("--flags", str(path))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        banner = [proc.stdout.readline() for _ in range(5)]
        [flags_line] = [line for line in banner if str(path) in line]
        assert "3 flags" in flags_line
        body = {"token": KEY, "distinct_id": "user-42"}
        response = requests.post(f"{url}/flags/?v=2", json=body, timeout=5)
        assert values(response)["new-checkout"] == "control"
        write_flags(path, '{"flags": "broken"}')
        response = requests.post(f"{url}/flags/?v=2", json=body, timeout=5)
        assert values(response)["new-checkout"] == "control"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    [warning] = [line for line in err.splitlines() if str(path) in line]
    assert "'flags' must be an object" in warning


def test_cli_refuses_an_invalid_flags_file_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, {"flags": {"new-checkout": 7}})
    proc = _run_cli("--flags", str(path))
    out, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in err
    assert str(path) in err
    assert "flags.new-checkout" in err
    assert "listening" not in out


def test_cli_banner_without_flags_does_not_mention_them() -> None:
    proc = _run_cli()
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        banner = [proc.stdout.readline() for _ in range(4)]
        assert not any("flags" in line for line in banner)
        response = requests.post(f"{url}/flags?v=2", json={"token": KEY, "distinct_id": "a"},
                                 timeout=5)
        assert response.json()["flags"] == {}
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
