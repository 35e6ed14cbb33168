"""The module-level API and its lazily built default client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.core.test_delivery import sender_threads


@pytest.fixture(autouse=True)
def _fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    yield
    posthog.shutdown()
    for name in ("api_key", "host", "debug", "disabled", "sync_mode"):
        setattr(posthog, name, None)
    posthog.configure()


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
