"""Django is set up once for these tests, with the project in ``tests/django/project``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.project.settings")
django.setup()

import posthog_integrations as posthog  # noqa: E402
from posthog_integrations.sink import LocalSink  # noqa: E402
from tests.conftest import API_KEY  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _database() -> None:
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


@pytest.fixture
def default_client(sink: LocalSink) -> Iterator[posthog.Client]:
    """The default client, which the Django integration uses, pointed at the local endpoint."""
    client = posthog.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
    yield client
    posthog.shutdown()
