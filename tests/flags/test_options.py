"""The flag options are validated like every other: a ConfigurationError naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_integrations import Client, ConfigurationError
from posthog_integrations.core.options import ClientOptions


@pytest.mark.parametrize(("option", "value"), [
    ("flags_timeout", 0), ("flags_timeout", -1), ("flags_timeout", "3"), ("flags_timeout", True),
    ("flag_defaults", ["a"]), ("flag_defaults", {"a": 1}), ("flag_defaults", {"a": None}),
    ("flag_defaults", {1: True}), ("flag_defaults", {"": True}),
    ("feature_flags_request_max_retries", 1.5), ("feature_flags_request_max_retries", "1"),
])
def test_bad_values_name_the_option(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        Client("phc_x", **{option: value})


def test_defaults_and_accepted_values() -> None:
    defaults = ClientOptions.resolve({}, environ={})
    assert (defaults.flags_timeout, dict(defaults.flag_defaults),
            defaults.feature_flags_request_max_retries) == (3.0, {}, 1)
    options = ClientOptions.resolve({
        "flags_timeout": 0.5, "flag_defaults": {"a": True, "b": "control"},
        "feature_flags_request_max_retries": -2,
    }, environ={})
    assert options.flags_timeout == 0.5
    assert dict(options.flag_defaults) == {"a": True, "b": "control"}
    assert options.feature_flags_request_max_retries == 0  # negative means no retry


def test_flag_defaults_cannot_be_changed_after_configuration() -> None:
    given = {"a": True}
    options = ClientOptions.resolve({"flag_defaults": given}, environ={})
    given["a"] = False
    assert options.flag_defaults["a"] is True
    with pytest.raises(TypeError):
        options.flag_defaults["a"] = False  # type: ignore[index]
