"""settings.POSTHOG: errors that name the key, system checks that say what would go wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from posthog_integrations.django import conf

OURS = "posthog_integrations.django.PostHogMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"


def check_ids(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[str]:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_DISABLED", raising=False)
    with override_settings(**settings):
        return sorted(m.id for m in run_checks() if m.id.startswith("posthog_integrations"))


def test_a_configured_project_passes_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_ids(monkeypatch) == []


def test_a_missing_api_key_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_ids(monkeypatch, POSTHOG={}) == ["posthog_integrations.W001"]
    assert check_ids(monkeypatch, POSTHOG={"DISABLED": True}) == []
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_env")
    with override_settings(POSTHOG={}):
        assert [m.id for m in run_checks() if m.id.startswith("posthog")] == []


@pytest.mark.parametrize(
    ("posthog", "message"),
    [
        ({"API_KEY": "phc_x", "EXCLUDE_PATH": ["/health"]},
         r"^settings\.POSTHOG: unknown key 'EXCLUDE_PATH'; did you mean 'EXCLUDE_PATHS'\?$"),
        ({"api_key": "phc_secret_value"},
         r"^settings\.POSTHOG: unknown key 'api_key'; did you mean 'API_KEY'\?$"),
        ({"API_KEY": "phc_x", "flush_at": 10}, r"unknown key 'flush_at'; did you mean "
                                               r"'FLUSH_AT'\?$"),
        ({"API_KEY": "phc_x", "ACCESS_TOKEN": "phx_secret_value"},
         r"^settings\.POSTHOG: unknown key 'ACCESS_TOKEN'$"),
    ],
)
def test_an_unknown_key_fails_at_startup_naming_the_closest_known_one(
        posthog: dict[str, Any], message: str) -> None:
    from django.apps import apps

    from posthog_integrations.django import PostHogMiddleware

    app = apps.get_app_config("posthog_integrations")
    with override_settings(POSTHOG=posthog):
        for start in (conf.load, app.ready, lambda: PostHogMiddleware(lambda request: None)):
            with pytest.raises(ImproperlyConfigured, match=message) as raised:
                start()
            assert "secret_value" not in str(raised.value)


def test_middleware_before_authentication_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = [SESSIONS, OURS, AUTH]
    assert check_ids(monkeypatch, MIDDLEWARE=wrong) == ["posthog_integrations.W003"]
    assert check_ids(monkeypatch, MIDDLEWARE=wrong,
                     POSTHOG={"API_KEY": "phc_x", "IDENTIFY_USER": False}) == []


def test_cors_headers_without_the_tracing_headers_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from corsheaders.defaults import default_headers
    from django.conf import settings

    from posthog_integrations.web import TRACING_HEADERS

    apps = [*settings.INSTALLED_APPS, "corsheaders"]
    assert check_ids(monkeypatch, INSTALLED_APPS=apps) == ["posthog_integrations.W004"]
    allowed = [*default_headers, *TRACING_HEADERS]
    assert check_ids(monkeypatch, INSTALLED_APPS=apps, CORS_ALLOW_HEADERS=allowed) == []


@pytest.mark.parametrize(
    ("posthog", "message"),
    [
        ({"FLUSH_AT": "many"}, r"settings.POSTHOG\['FLUSH_AT'\] must be an integer"),
        ({"CAPTURE_EXCEPTIONS": "yes"}, r"settings.POSTHOG\['CAPTURE_EXCEPTIONS'\]: expected"),
        ({"EXCLUDE_PATHS": ["health"]}, r"settings.POSTHOG\['EXCLUDE_PATHS'\]: each entry"),
        ({"TRUSTED_PROXIES": "nonsense"}, r"settings.POSTHOG\['TRUSTED_PROXIES'\]"),
        ({"IDENTIFY_USER": "no"}, r"settings.POSTHOG\['IDENTIFY_USER'\]: expected True"),
        ({"EXTRA_TAGS": "myproject.missing.tags"}, r"\['EXTRA_TAGS'\]: cannot import"),
        ("not a dict", "settings.POSTHOG must be a dict"),
    ],
)
def test_bad_values_raise_improperly_configured_naming_the_key(posthog: Any,
                                                               message: str) -> None:
    with override_settings(POSTHOG=posthog), pytest.raises(ImproperlyConfigured, match=message):
        conf.load()


def test_hooks_may_be_dotted_paths() -> None:
    with override_settings(POSTHOG={"EXTRA_TAGS": "tests.django.project.views.item"}):
        config = conf.load()
    from tests.django.project.views import item

    assert config.request_options.extra_tags is item


def test_posthog_check_reports_delivery(sink: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exit statuses: 0 delivered, 1 sending failed, 2 nothing could be sent."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    with override_settings(POSTHOG={"API_KEY": "phc_check", "HOST": sink.url}):
        call_command("posthog_check", stdout=out)
    assert "PostHog check passed: delivered a test event to" in out.getvalue()
    [event] = sink.events()
    assert event["event"] == "posthog_integrations check"

    sink.script(401)
    out = StringIO()
    with override_settings(POSTHOG={"API_KEY": "phc_wrong", "HOST": sink.url}), \
            pytest.raises(SystemExit) as exit_info:
        call_command("posthog_check", stdout=out)
    assert exit_info.value.code == 1
    assert "answered HTTP 401: the API key was rejected" in out.getvalue()
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    out = StringIO()
    with override_settings(POSTHOG={"HOST": sink.url}), pytest.raises(SystemExit) as exit_info:
        call_command("posthog_check", stdout=out)
    assert exit_info.value.code == 2
    assert "FAIL API key: missing" in out.getvalue()
    out = StringIO()
    with override_settings(POSTHOG={"API_KEY": "phc_x", "HOST": "http://127.0.0.1:9"}), \
            pytest.raises(SystemExit) as exit_info:
        call_command("posthog_check", "--timeout", "2", stdout=out)
    assert exit_info.value.code == 1
    assert "cannot connect to http://127.0.0.1:9" in out.getvalue()
