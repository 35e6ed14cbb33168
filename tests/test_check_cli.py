"""``posthog-integrations check`` against a real capture endpoint on loopback.

Exit status: 0 delivered, 1 sending failed, 2 nothing could be sent (a missing API key is 2:
the configuration, not the network, is at fault).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from posthog_integrations.__main__ import main
from posthog_integrations.check import CHECK_EVENT, run_check
from posthog_integrations.check_hazards import SERVERLESS_VARIABLES, uwsgi_finding
from posthog_integrations.sink import LocalSink
from tests.loopback import LoopbackServer, answer_ok, dribble_body, redirect_to

KEY = "phc_cli_check_secret_0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parents[1]
APP_MODULE = "posthog_check_cli_app"
APP_SOURCE = f"""
import os

from flask import Flask

from posthog_integrations.flask import PostHog


def create_app(host, **config):
    app = Flask(__name__)
    app.config.update(POSTHOG_API_KEY={KEY!r}, POSTHOG_HOST=host, **config)
    PostHog(app)
    return app


def create_app_without_posthog(host):
    app = Flask(__name__)
    app.config.update(POSTHOG_API_KEY={KEY!r}, POSTHOG_HOST=host)
    return app


def create_broken_app():
    raise RuntimeError("cannot start with key " + os.environ["POSTHOG_API_KEY"])
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PostHog settings and no server or platform variables from the machine running tests."""
    names = ["POSTHOG_API_KEY", "POSTHOG_HOST", "POSTHOG_DEBUG", "POSTHOG_DISABLED",
             "GUNICORN_CMD_ARGS", "DJANGO_SETTINGS_MODULE", *SERVERLESS_VARIABLES]
    names += [name for name in os.environ if name.startswith("UWSGI_")]
    for name in names:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def configured(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> LocalSink:
    """The environment points the check at ``sink`` with the key."""
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", sink.url)
    return sink


@pytest.fixture
def flask_app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / f"{APP_MODULE}.py").write_text(APP_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield APP_MODULE
    sys.modules.pop(APP_MODULE, None)


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the command in-process; return its exit status and output, which never has the key."""
    status = main(["check", *args])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert KEY not in output
    return status, output


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def clean_env(**variables: str) -> dict[str, str]:
    """The (already cleaned) environment for a child process, plus ``variables``."""
    return {**os.environ, **variables}


# -- the environment ---------------------------------------------------------------------


def test_a_delivered_event_passes(configured: LocalSink,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, output = check(capsys)
    assert status == 0
    assert "with the settings of the environment" in output
    assert "ok   API key: present (project key phc_...cdef)" in output
    assert f"ok   host: {configured.url}" in output
    assert "ok   reachable:" in output
    assert "ok   HTTP status: 200 (the event was accepted)" in output
    assert "ok   latency: " in output
    assert "PostHog check passed: delivered a test event" in output
    [event] = configured.events(event=CHECK_EVENT, api_key=KEY)
    assert event["properties"]["$process_person_profile"] is False


def test_a_rejected_key_fails_and_says_the_key_is_wrong(
    configured: LocalSink, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.script(401)
    status, output = check(capsys)
    assert status == 1
    assert "FAIL HTTP status: 401 (the API key was rejected: use the project API key" in output
    assert "PostHog check failed:" in output
    assert configured.events() == []


def test_a_closed_port_fails_with_cannot_connect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", f"http://127.0.0.1:{closed_port()}")
    status, output = check(capsys, "--timeout", "2")
    assert status == 1
    assert "FAIL reachable: cannot connect to http://127.0.0.1:" in output
    assert "HTTP status" not in output


def test_a_redirecting_host_fails_and_names_where_it_points(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer(answer_ok) as elsewhere, \
            LoopbackServer(redirect_to(301, f"{elsewhere.url}/batch/")) as redirecting:
        monkeypatch.setenv("POSTHOG_API_KEY", KEY)
        monkeypatch.setenv("POSTHOG_HOST", redirecting.url)
        status, output = check(capsys, "--timeout", "2")
    assert status == 1
    assert "FAIL HTTP status: 301 (the host redirects" in output
    assert f"{elsewhere.url}/batch/" in output
    assert "PostHog check failed:" in output
    assert elsewhere.connections == 0


def test_a_hung_endpoint_fails_within_twice_the_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer(dribble_body(interval=0.4, length=30)) as server:
        monkeypatch.setenv("POSTHOG_API_KEY", KEY)
        monkeypatch.setenv("POSTHOG_HOST", server.url)
        started = time.monotonic()
        status, output = check(capsys, "--timeout", "1")
        elapsed = time.monotonic() - started
    assert status == 1
    assert "did not answer in time" in output
    assert elapsed < 2 * 1 + 2.5, f"the check took {elapsed:.2f}s"  # unbounded: 8 s


def test_no_api_key_is_a_configuration_error(
    sink: LocalSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTHOG_HOST", sink.url)
    status, output = check(capsys)
    assert status == 2
    assert "FAIL API key: missing" in output
    assert "PostHog check failed: nothing was sent" in output
    assert sink.requests() == []


def test_disabled_posthog_sends_nothing(configured: LocalSink, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POSTHOG_DISABLED", "1")
    status, output = check(capsys)
    assert status == 2
    assert "FAIL disabled: PostHog is disabled" in output
    assert configured.requests() == []


def test_an_invalid_setting_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", "us.i.posthog.com")
    status, output = check(capsys)
    assert status == 2
    assert "host must start with http:// or https://" in output


def test_a_personal_key_is_flagged_and_never_printed(
    sink: LocalSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    personal = "phx_personal_secret_0123456789wxyz"
    monkeypatch.setenv("POSTHOG_API_KEY", personal)
    monkeypatch.setenv("POSTHOG_HOST", sink.url)
    sink.script(401)
    status, output = check(capsys)
    assert status == 1
    assert personal not in output
    assert "warn API key: present (phx_...wxyz), but phx_ is a personal API key" in output


@pytest.mark.parametrize("timeout", ["0", "-1", "soon"])
def test_a_bad_timeout_is_a_usage_error(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--timeout", timeout])
    assert exit_info.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


def test_check_needs_no_werkzeug(configured: LocalSink) -> None:
    script = ("import sys; sys.modules['werkzeug'] = None; "
              "from posthog_integrations.__main__ import main; sys.exit(main(['check']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr
    assert len(configured.events(event=CHECK_EVENT)) == 1


# -- hazards from the environment -------------------------------------------------------


def test_serverless_without_sync_mode_and_gunicorn_preload_are_reported(
    configured: LocalSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "checkout")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 3 --preload --bind :8000")
    status, output = check(capsys)
    assert status == 0
    assert "warn serverless: AWS_LAMBDA_FUNCTION_NAME is set and sync_mode is off" in output
    assert "set sync_mode=True or call flush() at the end of each invocation" in output
    assert "ok   gunicorn --preload: " in output
    assert "the client is fork-safe" in output


def test_no_hazard_lines_without_hazards(configured: LocalSink,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, output = check(capsys)
    assert "warn" not in output
    assert "gunicorn" not in output
    assert "uWSGI" not in output


def test_uwsgi_without_threads_is_reported_from_the_environment(
    configured: LocalSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UWSGI_MODULE", "shop.wsgi")
    _, output = check(capsys)
    assert "warn uWSGI: running under uWSGI (UWSGI_MODULE) and enable-threads was not found" \
        in output
    monkeypatch.setenv("UWSGI_ENABLE_THREADS", "true")
    _, output = check(capsys)
    assert "ok   uWSGI: threads are enabled" in output


@pytest.mark.parametrize(("uwsgi_options", "level"), [
    ({}, "warn"),
    ({"enable-threads": True}, "ok"),
    ({"enable-threads": b"1"}, "ok"),
    ({"threads": b"4"}, "ok"),
    ({"threads": b"1"}, "warn"),
])
def test_uwsgi_options_decide_inside_uwsgi(uwsgi_options: dict[str, object], level: str) -> None:
    finding = uwsgi_finding(False, {}, ["python"], uwsgi_options)
    assert finding is not None
    assert finding.level == level


def test_uwsgi_with_sync_mode_needs_no_threads() -> None:
    finding = uwsgi_finding(True, {"UWSGI_INI": "/srv/uwsgi.ini"}, [], None)
    assert finding is not None
    assert (finding.level, finding.topic) == ("ok", "uWSGI")
    assert uwsgi_finding(False, {}, ["gunicorn"], None) is None


# -- Flask ------------------------------------------------------------------------------


def test_flask_app_factory_settings_are_used(sink: LocalSink, flask_app_module: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    status, output = check(capsys, "--flask-app", f"{flask_app_module}:create_app({sink.url!r})")
    assert status == 0, output
    assert f"with the settings of the Flask app {flask_app_module}:create_app(" in output
    assert len(sink.events(event=CHECK_EVENT, api_key=KEY)) == 1


def test_flask_app_with_sync_mode_on_a_serverless_platform(
    sink: LocalSink, flask_app_module: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERCEL", "1")
    app = f"{flask_app_module}:create_app({sink.url!r}, POSTHOG_SYNC_MODE=True)"
    status, output = check(capsys, "--flask-app", app)
    assert status == 0, output
    assert "ok   serverless: VERCEL is set and sync_mode is on" in output


def test_flask_app_with_send_off_sends_nothing(sink: LocalSink, flask_app_module: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    app = f"{flask_app_module}:create_app({sink.url!r}, POSTHOG_SEND=False)"
    status, output = check(capsys, "--flask-app", app)
    assert status == 2
    assert "FAIL send: send is False" in output
    assert sink.requests() == []


def test_flask_app_without_the_extension_is_checked_from_its_config(
    sink: LocalSink, flask_app_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = f"{flask_app_module}:create_app_without_posthog({sink.url!r})"
    status, output = check(capsys, "--flask-app", app)
    assert status == 0, output
    assert "warn Flask extension: PostHog is not set up on this app" in output
    assert len(sink.events(event=CHECK_EVENT, api_key=KEY)) == 1


def test_a_flask_app_that_cannot_load_is_a_configuration_error(
    flask_app_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    status, output = check(capsys, "--flask-app", f"{flask_app_module}:create_broken_app()")
    assert status == 2
    assert "cannot load the Flask app" in output
    assert "RuntimeError: cannot start with key phc_...cdef" in output
    status, output = check(capsys, "--flask-app", "no_such_module_for_posthog_check")
    assert status == 2
    assert "cannot load the Flask app 'no_such_module_for_posthog_check'" in output


# -- Django (in a child process: this test session has configured Django already) -------


def run_django_check(tmp_path: Path, posthog_setting: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("django", minversion="4.2")
    (tmp_path / "check_cli_settings.py").write_text(textwrap.dedent(f"""
        SECRET_KEY = "check-cli"
        INSTALLED_APPS = []
        POSTHOG = {posthog_setting}
    """))
    command = [sys.executable, "-m", "posthog_integrations", "check",
               "--django-settings", "check_cli_settings", "--timeout", "5"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env=clean_env(PYTHONPATH=str(tmp_path)), cwd=REPO_ROOT)


def test_django_settings_are_used(sink: LocalSink, tmp_path: Path) -> None:
    done = run_django_check(tmp_path, f'{{"API_KEY": {KEY!r}, "HOST": {sink.url!r}}}')
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert KEY not in output
    assert "with the settings of the Django settings check_cli_settings" in output
    assert len(sink.events(event=CHECK_EVENT, api_key=KEY)) == 1


def test_bad_django_settings_are_a_configuration_error(tmp_path: Path) -> None:
    done = run_django_check(tmp_path, f'{{"API_KEY": {KEY!r}, "FLUSH_AT": 0}}')
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert KEY not in output
    assert "settings.POSTHOG['FLUSH_AT'] must be at least 1" in output


# -- run_check itself, as the Django and Flask commands use it ---------------------------


def test_run_check_does_not_pass_when_send_is_off(sink: LocalSink) -> None:
    result = run_check({"api_key": KEY, "host": sink.url, "send": False})
    assert not result.ok
    assert "send is False" in result.message
    assert sink.requests() == []


def test_run_check_does_not_pass_when_before_send_drops_the_event(sink: LocalSink) -> None:
    result = run_check({"api_key": KEY, "host": sink.url, "before_send": lambda event: None})
    assert not result.ok
    assert "dropped the test event" in result.message
    assert sink.requests() == []
