"""The module-level API and its lazily built default client."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.core.test_delivery import sender_threads


def _reset_default_client() -> None:
    posthog.shutdown()
    for name in ("api_key", "host", "debug", "disabled", "sync_mode"):
        setattr(posthog, name, None)
    posthog.configure()


@pytest.fixture(autouse=True)
def _fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    _reset_default_client()  # other modules configure it too (Django's app does, from settings)
    yield
    monkeypatch.undo()  # before configure(), which raises on a malformed environment
    _reset_default_client()


def test_module_level_capture(sink: LocalSink) -> None:
    posthog.api_key = API_KEY
    posthog.host = sink.url
    uuid = posthog.capture("from module", distinct_id="u", properties={"a": 1})
    posthog.set(distinct_id="u", properties={"plan": "pro"})
    posthog.set_once(distinct_id="u", properties={"first": True})
    posthog.alias("anon", "u")
    posthog.group_identify("company", "acme")
    assert posthog.flush()
    events = sink.events()
    assert events[0]["uuid"] == uuid
    assert [e["event"] for e in events] == [
        "from module", "$set", "$set_once", "$create_alias", "$groupidentify"
    ]


def test_importing_and_building_start_nothing() -> None:
    before = len(sender_threads())
    posthog.api_key = API_KEY
    posthog.get_client()
    assert len(sender_threads()) == before


def test_late_configuration_replaces_the_default_client(sink: LocalSink) -> None:
    assert posthog.capture("before configuration") is None  # no key yet: disabled
    posthog.api_key = API_KEY
    posthog.host = sink.url
    posthog.capture("after configuration", distinct_id="u")
    posthog.flush()
    assert [e["event"] for e in sink.events()] == ["after configuration"]


def test_configure_accepts_every_client_option(sink: LocalSink) -> None:
    client = posthog.configure(api_key=API_KEY, host=sink.url, super_properties={"app": "shop"})
    assert posthog.get_client() is client
    posthog.capture("configured", distinct_id="u")
    posthog.flush()
    assert sink.events()[0]["properties"]["app"] == "shop"


def test_disabled_setting(sink: LocalSink) -> None:
    posthog.configure(api_key=API_KEY, host=sink.url, disabled=True)
    assert posthog.capture("nothing", distinct_id="u") is None
    assert sink.requests() == []


def test_posthog_alias() -> None:
    assert posthog.Posthog is posthog.Client


# -- a malformed configuration never reaches the app -----------------------------------------


def call_every_facade_function() -> int:
    """Call each module-level function the way a view would; return how many events it tried."""
    results = [
        posthog.capture("view", distinct_id="u", properties={"a": 1}),
        posthog.set(distinct_id="u", properties={"plan": "pro"}),
        posthog.set_once(distinct_id="u", properties={"first": True}),
        posthog.alias("anon", "u"),
        posthog.group_identify("company", "acme"),
    ]
    try:
        raise ValueError("handled by the view")
    except ValueError:
        results.append(posthog.capture_exception())
    with pytest.raises(LookupError), posthog.new_context():  # the app's own error, unchanged
        posthog.tag("plan", "pro")
        raise LookupError("escapes the context")

    @posthog.scoped()
    def decorated() -> str | None:
        posthog.identify_context("u")
        return posthog.capture("in scoped", distinct_id="u")

    results.append(decorated())
    assert results == [None] * len(results)
    assert posthog.flush() is True
    return len(results) + 1  # and the exception escaping the context


@pytest.mark.parametrize(("variable", "value"), [
    ("POSTHOG_HOST", "us.i.posthog.com"), ("POSTHOG_DEBUG", "2"), ("POSTHOG_DISABLED", "maybe"),
])
def test_a_malformed_environment_disables_the_facade_and_counts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, value: str
) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv(variable, value)
    posthog.shutdown()  # the next call builds the default client, as in a fresh process
    tried = call_every_facade_function()
    tried += call_every_facade_function()
    assert posthog.get_client().disabled
    stats = posthog.stats()
    assert stats.dropped_by_reason["invalid_configuration"] == tried
    assert stats.dropped == tried
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert variable in message
    assert "disabled" in message
    assert "invalid_configuration" in message
    assert API_KEY not in caplog.text
    assert posthog.shutdown() is True


def test_a_malformed_module_setting_disables_the_facade(
    sink: LocalSink, caplog: pytest.LogCaptureFixture
) -> None:
    posthog.api_key = API_KEY
    posthog.host = "us.i.posthog.com"
    assert posthog.capture("lost", distinct_id="u") is None
    assert posthog.stats().dropped_by_reason["invalid_configuration"] == 1
    assert "host must start with http:// or https://" in caplog.text
    posthog.host = sink.url  # fixing the setting builds a working client
    uuid = posthog.capture("kept", distinct_id="u")
    assert posthog.flush()
    assert [event["uuid"] for event in sink.events()] == [uuid]
    assert posthog.stats().dropped == 0


def test_the_configuration_error_line_never_shows_the_key(
    caplog: pytest.LogCaptureFixture
) -> None:
    secret = "not-prefixed-secret-value"
    posthog.api_key = secret
    posthog.host = secret  # the message quotes the bad host, which here is the key
    assert posthog.capture("lost", distinct_id="u") is None
    assert "host must start with http" in caplog.text
    assert secret not in caplog.text


def test_an_explicit_client_or_configure_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_HOST", "us.i.posthog.com")
    with pytest.raises(posthog.ConfigurationError, match=r"^POSTHOG_HOST: host must"):
        posthog.Client(API_KEY)
    monkeypatch.delenv("POSTHOG_HOST")
    with pytest.raises(posthog.ConfigurationError, match="flush_at"):
        posthog.configure(api_key=API_KEY, flush_at=0)


# -- layering ---------------------------------------------------------------------------------


def test_the_inner_packages_never_import_the_facade() -> None:
    """The facade delegates to core; core, web and feature_flags must not reach back into it."""
    package = Path(posthog.__file__).parent
    offenders = []
    for inner in ("core", "web", "feature_flags"):
        for source in sorted((package / inner).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if _imports_the_facade(node):
                    offenders.append(f"{source.relative_to(package)}:{node.lineno}")
    assert offenders == []


def _imports_the_facade(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and node.module == "posthog_integrations"
    return isinstance(node, ast.Import) and any(
        alias.name == "posthog_integrations" for alias in node.names)
