"""settings.POSTHOG['CELERY'] binds the Celery integration to the project's Celery app, once
per process, where the settings are read: the app's ``ready()``, or the middleware when the
app is not installed. A Celery app with a ``PostHogCelery`` of its own keeps it.

Each case runs a project in a child process (this process's Django has other settings); its
tasks run eagerly, in the request that enqueues them. The integration shows in what arrives:
the task's tag ``celery_task_name``, the request's description left behind, a failure
captured as a task's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from tests.e2e.servers import ROOT

pytest.importorskip("celery")

ORDER = """
    import sys
    # The Celery app exists before Django is set up, as when a project's package imports it.
    from tests.django.project import celery_app as project
    import django
    django.setup()
    from django.apps import apps
    from django.core.management import call_command
    from django.test import Client
    import posthog_integrations as posthog

    if "configured-twice" in sys.argv:
        apps.get_app_config("posthog_integrations").ready()
    call_command("migrate", run_syncdb=True, verbosity=0)
    client = Client(HTTP_X_POSTHOG_DISTINCT_ID="visitor-1", HTTP_X_POSTHOG_SESSION_ID="session-1")
    print("statuses", client.post("/orders/").status_code, client.post("/orders/").status_code)
    print("flushed", posthog.flush(5), project.own_client is None or project.own_client.flush(5))
"""


def run_project(sink: LocalSink, script: str, *arguments: str,
                **variables: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("POSTHOG_", "CELERY_"))}
    env.update(PYTHONPATH=str(ROOT), TEST_SINK_URL=sink.url,
               DJANGO_SETTINGS_MODULE="tests.django.project.settings_celery", **variables)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *arguments], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def assert_ordered_twice(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "statuses 200 200" in result.stdout
    assert "flushed True True" in result.stdout


def assert_run_as_tasks_of_the_visitor(events: list[dict[str, Any]]) -> None:
    for event in events:
        properties = event["properties"]
        assert (event["distinct_id"], properties["$session_id"]) == ("visitor-1", "session-1")
        assert properties["celery_task_name"].startswith("tests.django.project.celery_app.")
        assert properties["plan"] == "pro"
        assert "cart_note" not in properties  # PROPAGATE_TAGS from settings
        assert "$current_url" not in properties


@pytest.mark.parametrize("arguments", [(), ("configured-twice",)])
def test_the_settings_bind_the_project_celery_app_once(sink: LocalSink,
                                                       arguments: tuple[str, ...]) -> None:
    result = run_project(sink, ORDER, *arguments)
    assert_ordered_twice(result)
    confirmed = sink.events(event="order confirmed")
    failures = sink.events(event="$exception")
    assert len(confirmed) == 2
    assert len(failures) == 2  # one per failed task: not one per binding
    assert_run_as_tasks_of_the_visitor(confirmed + failures)
    assert {e["properties"]["$exception_source"] for e in failures} == {"celery.task_failure"}
    assert {r.api_key for r in sink.requests()} == {"phc_from_django_settings"}


def test_without_the_app_the_middleware_binds_it(sink: LocalSink) -> None:
    result = run_project(sink, ORDER, WITHOUT_APP="1")
    assert_ordered_twice(result)
    confirmed = sink.events(event="order confirmed")
    assert len(confirmed) == 2
    assert_run_as_tasks_of_the_visitor(confirmed)


def test_a_celery_app_with_its_own_integration_keeps_it(sink: LocalSink) -> None:
    result = run_project(sink, ORDER, OWN_INTEGRATION="1")
    assert_ordered_twice(result)
    confirmed = sink.events(event="order confirmed")
    assert len(confirmed) == 2
    assert {e["properties"]["celery_task_name"] for e in confirmed} == {
        "tests.django.project.celery_app.confirm_order"}
    # sent by the app's own integration, with its own client
    assert sink.events(event="order confirmed", api_key="phc_own_integration") == confirmed
    assert len(sink.events(event="$exception", api_key="phc_own_integration")) == 2


BLOCK_CELERY = """
    import sys
    sys.modules["celery"] = None  # every import of it fails, as when it is not installed
    import django
    from django.core.exceptions import ImproperlyConfigured
    try:
        django.setup()
    except ImproperlyConfigured as error:
        print("ImproperlyConfigured:", error)
"""


def test_without_celery_installed_the_setting_names_the_extra(sink: LocalSink) -> None:
    result = run_project(sink, BLOCK_CELERY)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("ImproperlyConfigured: settings.POSTHOG['CELERY'] is set: ")
    assert "pip install 'posthog-integrations[celery]'" in line
