"""Configuration: precedence, validation with clear messages, host normalization."""

from __future__ import annotations

from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client, ClientOptions, ConfigurationError
from posthog_integrations.core.options import DEFAULT_HOST, EU_HOST


def resolve(options: dict[str, Any], environ: dict[str, str] | None = None,
            framework: dict[str, Any] | None = None) -> ClientOptions:
    return ClientOptions.resolve(options, framework=framework, environ=environ or {})


def test_defaults() -> None:
    options = resolve({})
    assert (options.host, options.flush_at, options.max_queue_size, options.max_retries) == (
        DEFAULT_HOST, 100, 10_000, 3
    )
    assert options.gzip
    assert options.disable_geoip
    assert options.effective_disabled


def test_precedence_kwargs_over_framework_over_environment() -> None:
    environ = {"POSTHOG_API_KEY": "phc_env", "POSTHOG_HOST": "https://env.example"}
    assert resolve({}, environ).api_key == "phc_env"
    assert resolve({}, environ, {"api_key": "phc_fw"}).api_key == "phc_fw"
    assert resolve({"api_key": "phc_kw"}, environ, {"api_key": "phc_fw"}).api_key == "phc_kw"
    assert resolve({"host": None}, environ).host == "https://env.example"


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("off", False)])
def test_environment_booleans(raw: str, expected: bool) -> None:
    assert resolve({}, {"POSTHOG_DEBUG": raw}).debug is expected


def test_bad_environment_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="POSTHOG_DISABLED"):
        resolve({}, {"POSTHOG_DISABLED": "maybe"})


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("", DEFAULT_HOST),
        ("  https://app.posthog.com/ ", DEFAULT_HOST),
        ("https://us.posthog.com", DEFAULT_HOST),
        ("https://eu.posthog.com", EU_HOST),
        ("http://127.0.0.1:8010/", "http://127.0.0.1:8010"),
    ],
)
def test_host_normalization(host: str, expected: str) -> None:
    assert resolve({"host": host}).host == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flush_att": 5}, "unknown PostHog option 'flush_att'; did you mean 'flush_at'"),
        ({"flush_at": 0}, "flush_at must be at least 1"),
        ({"flush_at": "100"}, "flush_at must be an integer"),
        ({"max_queue_size": True}, "max_queue_size must be an integer"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"gzip": "yes"}, "gzip must be True or False"),
        ({"before_send": "scrub"}, "before_send must be callable"),
        ({"host": "us.i.posthog.com"}, "host must start with http"),
        ({"super_properties": ["a"]}, "super_properties must be a mapping"),
        ({"in_app_include": "myapp"}, "in_app_include must be a list of module names"),
        ({"api_key": 123}, "api_key must be a string"),
    ],
)
def test_bad_values_fail_at_configuration_naming_the_setting(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Client(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"FLUSH_AT": 5}, r"^unknown PostHog option 'FLUSH_AT'; did you mean 'flush_at'\?$"),
        ({"Super_Properties": {}},
         r"^unknown PostHog option 'Super_Properties'; did you mean 'super_properties'\?$"),
        ({"nothing_like_it": 1}, r"^unknown PostHog option 'nothing_like_it'$"),
    ],
)
def test_an_unknown_option_names_the_closest_known_one_whatever_its_case(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Client(**options)
    before = posthog.get_client()
    with pytest.raises(ConfigurationError, match=message):
        posthog.configure(**options)
    assert posthog.get_client() is before  # a configure() that fails changes nothing


def test_negative_max_retries_clamps_to_zero() -> None:
    assert resolve({"max_retries": -2}).max_retries == 0


def test_api_key_is_trimmed_and_hidden_from_repr() -> None:
    options = resolve({"api_key": "  phc_secret  "})
    assert options.api_key == "phc_secret"
    assert "phc_secret" not in repr(options)


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


def test_a_bad_environment_value_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^POSTHOG_HOST: host must start with http"):
        resolve({}, {"POSTHOG_HOST": "us.i.posthog.com"})
    assert resolve({"host": "https://kw.example"}, {"POSTHOG_HOST": "bad"}).host == (
        "https://kw.example"  # an overridden variable is never read
    )
