"""The middleware in a project that left ``posthog_integrations.django`` out of INSTALLED_APPS:
it configures the default client from settings.POSTHOG itself, and says the app is recommended.

Run in a child process: this process's Django is set up with the app.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from posthog_integrations.sink import LocalSink
from tests.e2e.servers import ROOT

REQUESTS = """
    import django
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    import posthog_integrations as posthog

    call_command("migrate", run_syncdb=True, verbosity=0)
    client = Client(HTTP_X_POSTHOG_DISTINCT_ID="visitor-1")
    print("statuses", client.get("/items/7/").status_code, client.get("/items/8/").status_code)
    print("flushed", posthog.flush(5))
"""


def run_project(sink: LocalSink, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_SINK_URL": sink.url,
           "DJANGO_SETTINGS_MODULE": "tests.django.project.settings_without_app"}
    for variable in ("POSTHOG_API_KEY", "POSTHOG_HOST", "POSTHOG_DISABLED"):
        env.pop(variable, None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_middleware_configures_the_client_from_settings_without_the_app(
        sink: LocalSink) -> None:
    result = run_project(sink, REQUESTS)
    assert result.returncode == 0, result.stderr
    assert "statuses 200 200" in result.stdout
    assert "flushed True" in result.stdout
    events = sink.events(event="item viewed")
    assert [(e["distinct_id"], e["properties"]["$route"]) for e in events] == [
        ("visitor-1", "/items/<int:item_id>/")] * 2
    assert {r.api_key for r in sink.requests()} == {"phc_from_django_settings"}
    # ... and says, once, why the app is still worth adding
    recommendations = [line for line in result.stderr.splitlines()
                       if "'posthog_integrations.django' is not in INSTALLED_APPS" in line]
    assert recommendations == [
        "'posthog_integrations.django' is not in INSTALLED_APPS: PostHogMiddleware configured "
        "the default client from settings.POSTHOG itself. Add the app to INSTALLED_APPS so that "
        "code outside requests (management commands, workers) is configured too, and for the "
        "posthog_bootstrap template tag, the posthog_check command and the system checks"]
