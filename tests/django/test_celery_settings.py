"""settings.POSTHOG['CELERY']: checked where the other keys are, at startup, naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from posthog_integrations.django import conf


def allowed_tag(name: str) -> bool:
    return name == "plan"


@pytest.mark.parametrize(("celery", "options"), [
    (None, None),
    (False, None),
    (True, {}),
    ({}, {}),
    ({"CAPTURE_TASK_EVENTS": True, "PROPAGATE_TAGS": ["plan"]},
     {"capture_task_events": True, "propagate_tags": ["plan"]}),
    ({"PROPAGATE": False, "CAPTURE_FAILURES": False},
     {"propagate": False, "capture_failures": False}),
    ({"PROPAGATE_TAGS": None}, {"propagate_tags": None}),
    ({"SHUTDOWN_TIMEOUT": 2}, {"shutdown_timeout": 2}),
])
def test_the_celery_key_becomes_the_options_of_the_integration(
        celery: Any, options: dict[str, Any] | None) -> None:
    posthog = {"API_KEY": "phc_x"} if celery is None else {"API_KEY": "phc_x", "CELERY": celery}
    with override_settings(POSTHOG=posthog):
        assert conf.load().celery == options


def test_propagate_tags_may_be_the_dotted_path_of_a_function() -> None:
    path = f"{__name__}.allowed_tag"
    with override_settings(POSTHOG={"CELERY": {"PROPAGATE_TAGS": path}}):
        assert conf.load().celery == {"propagate_tags": allowed_tag}


@pytest.mark.parametrize(("celery", "message"), [
    ({"CAPTURE_TASK_EVENT": True},
     r"^settings\.POSTHOG\['CELERY'\]: unknown key 'CAPTURE_TASK_EVENT'; did you mean "
     r"'CAPTURE_TASK_EVENTS'\?$"),
    ({"propagate_tags": ["plan"]},
     r"^settings\.POSTHOG\['CELERY'\]: unknown key 'propagate_tags'; did you mean "
     r"'PROPAGATE_TAGS'\?$"),
    ({"BROKER_URL": "redis://localhost"},
     r"^settings\.POSTHOG\['CELERY'\]: unknown key 'BROKER_URL'$"),
])
def test_an_unknown_celery_key_fails_at_startup_naming_the_closest_known_one(
        celery: dict[str, Any], message: str) -> None:
    from django.apps import apps

    from posthog_integrations.django import PostHogMiddleware

    app = apps.get_app_config("posthog_integrations")
    with override_settings(POSTHOG={"API_KEY": "phc_x", "CELERY": celery}):
        for start in (conf.load, app.ready, lambda: PostHogMiddleware(lambda request: None)):
            with pytest.raises(ImproperlyConfigured, match=message):
                start()


def test_a_misspelt_celery_key_at_the_top_level_is_named_too() -> None:
    with override_settings(POSTHOG={"CELERI": True}), pytest.raises(
            ImproperlyConfigured, match=r"unknown key 'CELERI'; did you mean 'CELERY'\?$"):
        conf.load()


@pytest.mark.parametrize(("celery", "message"), [
    ("yes", r"^settings\.POSTHOG\['CELERY'\]: expected True, False or a dict of options"),
    (["PROPAGATE"], r"^settings\.POSTHOG\['CELERY'\]: expected True, False or a dict"),
    ({"PROPAGATE": "no"},
     r"^settings\.POSTHOG\['CELERY'\]\['PROPAGATE'\]: expected True or False, got 'no'$"),
    ({"CAPTURE_TASK_EVENTS": 1},
     r"^settings\.POSTHOG\['CELERY'\]\['CAPTURE_TASK_EVENTS'\]: expected True or False"),
    ({"CAPTURE_FAILURES": None},
     r"^settings\.POSTHOG\['CELERY'\]\['CAPTURE_FAILURES'\]: expected True or False"),
    ({"PROPAGATE_TAGS": "plan"},
     r"^settings\.POSTHOG\['CELERY'\]\['PROPAGATE_TAGS'\]: cannot import 'plan' .*a list of "
     r"tag names or the dotted path of a function"),
    ({"PROPAGATE_TAGS": ["plan", 7]},
     r"^settings\.POSTHOG\['CELERY'\]\['PROPAGATE_TAGS'\]: expected tag names \(strings\), "
     r"got 7$"),
    ({"PROPAGATE_TAGS": 7},
     r"^settings\.POSTHOG\['CELERY'\]\['PROPAGATE_TAGS'\]: expected None, a list of tag names"),
    ({"SHUTDOWN_TIMEOUT": 0},
     r"^settings\.POSTHOG\['CELERY'\]\['SHUTDOWN_TIMEOUT'\]: expected a positive number of "
     r"seconds, got 0$"),
    ({"SHUTDOWN_TIMEOUT": "5"},
     r"^settings\.POSTHOG\['CELERY'\]\['SHUTDOWN_TIMEOUT'\]: expected a positive number"),
    ({"SHUTDOWN_TIMEOUT": True},
     r"^settings\.POSTHOG\['CELERY'\]\['SHUTDOWN_TIMEOUT'\]: expected a positive number"),
])
def test_a_bad_celery_value_fails_naming_the_key(celery: Any, message: str) -> None:
    with override_settings(POSTHOG={"CELERY": celery}), pytest.raises(
            ImproperlyConfigured, match=message):
        conf.load()


def test_the_celery_keys_are_the_integrations_options() -> None:
    pytest.importorskip("celery")
    from posthog_integrations.celery import OPTIONS

    assert {key.lower() for key in conf.CELERY_KEYS} == OPTIONS
