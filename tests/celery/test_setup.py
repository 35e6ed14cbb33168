"""Setting the integration up: its options, one per app, every app, the optional extra."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

import posthog_integrations
from posthog_integrations import ConfigurationError, identify_context
from posthog_integrations.celery import OPTIONS, PostHogCelery
from posthog_integrations.sink import LocalSink
from tests.celery.tasks import register
from tests.conftest import API_KEY, ClientFactory, delivered

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def eager_app() -> tuple[Celery, str]:
    prefix = f"setup{uuid.uuid4().hex[:8]}"
    app = Celery(prefix, broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    register(app, prefix)
    return app, prefix


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_importing_the_library_does_not_import_celery() -> None:
    done = run_python("import sys, posthog_integrations, posthog_integrations.django, "
                      "posthog_integrations.flask\n"
                      "print('celery' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_celery_the_import_error_names_the_extra() -> None:
    done = run_python("import sys\nsys.modules['celery'] = None\n"
                      "import posthog_integrations.celery")
    assert done.returncode != 0
    assert "pip install 'posthog-integrations[celery]'" in done.stderr


def test_the_options_are_the_documented_ones() -> None:
    assert frozenset({"propagate", "propagate_tags", "capture_task_events",
                      "capture_failures", "shutdown_timeout"}) == OPTIONS


@pytest.mark.parametrize(("options", "message"), [
    ({"propagate_tags": "plan"}, "propagate_tags"),
    ({"propagate_tags": 5}, "propagate_tags"),
    ({"propagate_tags": ["plan", 3]}, "propagate_tags"),
    ({"shutdown_timeout": -1}, "shutdown_timeout"),
    ({"shutdown_timeout": True}, "shutdown_timeout"),
    ({"propagate": "yes"}, "propagate"),
    ({"capture_task_events": 1}, "capture_task_events"),
    ({"capture_failures": None}, "capture_failures"),
])
def test_a_bad_option_is_a_configuration_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PostHogCelery(**options)  # type: ignore[arg-type]


def test_a_client_that_is_not_a_client_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        PostHogCelery(client=API_KEY)  # type: ignore[arg-type]
    assert API_KEY not in str(raised.value)


def test_an_app_is_set_up_once() -> None:
    app, _ = eager_app()
    PostHogCelery(app)
    with pytest.raises(RuntimeError, match="already set up"):
        PostHogCelery().init_app(app)


def test_init_app_later(make_client: ClientFactory, sink: LocalSink) -> None:
    app, prefix = eager_app()
    client = make_client()
    extension = PostHogCelery(client=client)
    extension.init_app(app)
    assert extension.client is client
    with client.new_context(fresh=True):
        identify_context("user-late")
        app.tasks[f"{prefix}.capture"].delay("late")
    [event] = delivered(client, sink, event="late")
    assert event["distinct_id"] == "user-late"


def test_init_every_app_serves_apps_without_their_own(make_client: ClientFactory,
                                                      sink: LocalSink) -> None:
    everywhere, own = make_client(), make_client(api_key="phc_own_project")
    bare_app, bare = eager_app()
    owned_app, owned = eager_app()
    PostHogCelery(owned_app, client=own)
    PostHogCelery(client=everywhere).init_every_app()
    later_app, later = eager_app()  # created after: served too
    with everywhere.new_context(fresh=True):
        identify_context("user-every")
        bare_app.tasks[f"{bare}.capture"].delay("bare")
        owned_app.tasks[f"{owned}.capture"].delay("owned")
        later_app.tasks[f"{later}.capture"].delay("later")
    assert everywhere.flush(5)
    assert own.flush(5)
    by_key: dict[str, list[str]] = {}
    for request in sink.requests():
        by_key.setdefault(str(request.api_key), []).extend(e["event"] for e in request.events)
    assert sorted(by_key[API_KEY]) == ["bare", "later"]
    assert by_key["phc_own_project"] == ["owned"]
    assert {e["distinct_id"] for e in sink.events()} == {"user-every"}


@pytest.fixture
def default_client_to(sink: LocalSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in ("POSTHOG_API_KEY", "POSTHOG_HOST", "POSTHOG_DEBUG", "POSTHOG_DISABLED"):
        monkeypatch.delenv(variable, raising=False)
    posthog_integrations.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
    yield
    posthog_integrations.shutdown(2)
    for name in ("api_key", "host", "debug", "disabled", "sync_mode"):
        setattr(posthog_integrations, name, None)
    posthog_integrations.configure()


def test_without_a_client_the_default_client_serves(default_client_to: None,
                                                    sink: LocalSink) -> None:
    app, prefix = eager_app()
    extension = PostHogCelery(app)
    assert extension.client is posthog_integrations.get_client()
    with posthog_integrations.new_context(fresh=True):
        identify_context("user-default")
        app.tasks[f"{prefix}.capture"].delay("by default")
    assert posthog_integrations.flush(5)
    [event] = sink.events(event="by default")
    assert event["distinct_id"] == "user-default"
