"""The options of local evaluation: ``secret_key`` (alias ``personal_api_key``), ``poll_interval``.

The secret key is checked by substring: it must appear in no repr and no error message.
"""

from __future__ import annotations

from typing import Any

import pytest

from posthog_integrations import Client, ClientOptions, ConfigurationError
from posthog_integrations.__main__ import main
from posthog_integrations.core.options import MIN_POLL_INTERVAL
from posthog_integrations.sink import LocalSink

SECRET = "phx_options_secret_0123456789abcdef"
OTHER_SECRET = "phs_options_other_secret_9876543210"


def resolve(options: dict[str, Any], environ: dict[str, str] | None = None,
            framework: dict[str, Any] | None = None) -> ClientOptions:
    return ClientOptions.resolve(options, framework=framework, environ=environ or {})


def test_secret_key_defaults_to_none_given_and_poll_interval_to_30_seconds() -> None:
    options = resolve({})
    assert options.secret_key == ""
    assert options.poll_interval == 30.0


def test_secret_key_comes_from_the_environment_below_keywords_and_is_trimmed() -> None:
    environ = {"POSTHOG_SECRET_KEY": f"  {SECRET} "}
    assert resolve({}, environ).secret_key == SECRET
    assert resolve({}, environ, {"secret_key": OTHER_SECRET}).secret_key == OTHER_SECRET
    assert resolve({"secret_key": OTHER_SECRET}, environ).secret_key == OTHER_SECRET


def test_personal_api_key_is_an_alias_of_secret_key() -> None:
    assert resolve({"personal_api_key": SECRET}).secret_key == SECRET
    assert resolve({"personal_api_key": SECRET, "secret_key": SECRET}).secret_key == SECRET
    assert resolve({}, framework={"personal_api_key": SECRET}).secret_key == SECRET
    # Keywords still win over the environment, whichever of the two names they use.
    assert resolve({"personal_api_key": SECRET},
                   {"POSTHOG_SECRET_KEY": OTHER_SECRET}).secret_key == SECRET
    assert Client("phc_k", personal_api_key=SECRET, send=False).options.secret_key == SECRET


def test_two_different_secret_keys_are_an_error_that_shows_neither() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve({"secret_key": SECRET, "personal_api_key": OTHER_SECRET})
    message = str(raised.value)
    assert "secret_key" in message
    assert "personal_api_key" in message
    assert SECRET not in message
    assert OTHER_SECRET not in message


@pytest.mark.parametrize("value", [SECRET.encode(), 12345, [SECRET]])
def test_a_secret_key_that_is_no_string_is_an_error_that_does_not_echo_it(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="secret_key must be a string") as raised:
        resolve({"secret_key": value})
    assert "0123456789abcdef" not in str(raised.value)
    assert "12345" not in str(raised.value)


def test_the_secret_key_is_in_no_repr() -> None:
    options = resolve({"secret_key": SECRET})
    assert SECRET not in repr(options)
    assert SECRET not in str(options)
    client = Client("phc_k", secret_key=SECRET, send=False)
    assert SECRET not in repr(client)
    assert SECRET not in repr(client.options)


@pytest.mark.parametrize("value", [0.2, 1, 30, 600.5])
def test_poll_interval_takes_positive_seconds(value: float) -> None:
    assert resolve({"poll_interval": value}).poll_interval == float(value)


@pytest.mark.parametrize("value", [0, -1, "30", True, float("inf")])
def test_a_bad_poll_interval_is_an_error(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="poll_interval"):
        resolve({"poll_interval": value})


def test_a_poll_interval_below_the_minimum_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=f"poll_interval must be at least "
                                                 f"{MIN_POLL_INTERVAL:g}"):
        resolve({"poll_interval": MIN_POLL_INTERVAL / 2})


def test_flask_and_django_style_settings_accept_both_names() -> None:
    flask = pytest.importorskip("flask")
    from posthog_integrations.flask import PostHog

    app = flask.Flask(__name__)
    app.config.update(POSTHOG_API_KEY="phc_k", POSTHOG_SEND=False,
                      POSTHOG_PERSONAL_API_KEY=SECRET, POSTHOG_POLL_INTERVAL=5)
    extension = PostHog(app)
    try:
        assert extension.client.options.secret_key == SECRET
        assert extension.client.options.poll_interval == 5.0
    finally:
        extension.client.shutdown(timeout=1)


def test_the_check_command_never_prints_the_secret_key(
    sink: LocalSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("POSTHOG_DEBUG", "POSTHOG_DISABLED", "DJANGO_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_check_with_a_secret_0123456789")
    monkeypatch.setenv("POSTHOG_HOST", sink.url)
    monkeypatch.setenv("POSTHOG_SECRET_KEY", SECRET)
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
