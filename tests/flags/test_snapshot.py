"""Snapshots (spec §7): at most one request, none without an identity, frozen thread-safe reads."""

from __future__ import annotations

import threading

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client, FlagSnapshot
from posthog_integrations.feature_flags import FlagSnapshot as PackageFlagSnapshot
from tests.conftest import API_KEY
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer

FLAGS = {"featureFlags": {"a": True, "b": "variant", "c": False},
         "featureFlagPayloads": {"a": '{"x": 1}'}}


def test_one_request_serves_every_read(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    snapshot = make_flags_client().evaluate_flags("u")
    for _ in range(3):
        assert snapshot.get_flag("b") == "variant"
        assert snapshot.is_enabled("a")
        assert snapshot.get_flag_payload("a") == {"x": 1}
        assert snapshot.get_flag("missing") is None
    snapshot.only(["a"]).get_flag("a")
    snapshot.only_accessed().is_enabled("a")
    assert len(flags_server.flags_requests) == 1
    assert isinstance(snapshot, PackageFlagSnapshot)
    assert FlagSnapshot is PackageFlagSnapshot


def test_no_identity_means_no_request_and_an_empty_snapshot(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client(flag_defaults={"a": "fallback"})
    snapshot = client.evaluate_flags()
    assert snapshot.keys == ()
    assert snapshot.get_flag("a") == "fallback"
    assert client.get_feature_flag("a") == "fallback"
    assert client.get_all_flags() == {"a": "fallback"}
    assert flags_server.flags_requests == []
    assert client.flush(timeout=5)
    assert flags_server.events == []  # and no $feature_flag_called


@pytest.mark.parametrize("arguments", [{"only_evaluate_locally": True}, {"flag_keys": []}])
def test_only_local_or_no_keys_make_no_request(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, arguments: dict[str, object]
) -> None:
    client = make_flags_client(flag_defaults={"a": True})
    snapshot = client.evaluate_flags("u", **arguments)  # type: ignore[arg-type]
    assert snapshot.keys == ()
    assert snapshot.is_enabled("a") is True
    assert flags_server.flags_requests == []


@pytest.mark.parametrize("options", [{"disabled": True}, {"send": False}, {"api_key": ""}])
def test_a_client_that_does_not_send_asks_nothing_and_returns_defaults(
    flags_server: FlagsServer, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    settings: dict[str, object] = {"api_key": API_KEY, "host": flags_server.url, **options}
    client = Client(**settings)  # type: ignore[arg-type]
    try:
        assert client.evaluate_flags("u").get_flag("a", "d") == "d"
        assert client.feature_enabled("a", "u") is None
        assert client.get_feature_flag_payload("a", "u") is None
        assert client.get_all_flags("u") == {}
        flags_server.script(FLAGS)
        assert client.evaluate_flags("u").keys == ()
    finally:
        client.shutdown(timeout=2)
    assert flags_server.flags_requests == []


def test_a_shut_down_client_asks_nothing(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    client = make_flags_client()
    client.shutdown(timeout=2)
    assert client.get_feature_flag("a", "u") is None
    assert flags_server.flags_requests == []


def test_flag_defaults_fill_what_could_not_be_evaluated(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"flags": {
        "a": {"key": "a", "enabled": False},
        "failed": {"key": "failed", "enabled": True, "failed": True},
    }})
    client = make_flags_client(flag_defaults={"a": True, "failed": "dv", "missing": "mv"})
    snapshot = client.evaluate_flags("u")
    assert snapshot.get_flag("a") is False  # an evaluated False is not replaced
    assert snapshot.get_flag("failed") == "dv"
    assert snapshot.get_flag("missing", "call default") == "mv"
    assert snapshot.is_enabled("missing") is True
    assert snapshot.get_flag("unknown", "call default") == "call default"
    assert client.get_all_flags("u") == {"a": False, "failed": "dv", "missing": "mv"}


def test_flag_keys_limit_the_snapshot(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)  # the server answers more than was asked
    snapshot = make_flags_client().evaluate_flags("u", flag_keys=["a"])
    assert snapshot.keys == ("a",)
    assert snapshot.get_flag("b") is None


def test_only_and_only_accessed(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    flags_server.respond_with(FLAGS)
    snapshot = make_flags_client().evaluate_flags("u")
    assert snapshot.only_accessed().keys == ()
    snapshot.get_flag("b")
    snapshot.get_flag_payload("a")  # silent: not accessed
    assert snapshot.only_accessed().keys == ("b",)
    assert set(snapshot.only(["a", "c", "nope"]).keys) == {"a", "c"}
    assert "nope" in caplog.text


def test_values_are_frozen(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    snapshot = make_flags_client().evaluate_flags("u", groups={"company": "acme"})
    with pytest.raises(TypeError):
        snapshot.groups["company"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        snapshot.extra = 1  # type: ignore[attr-defined]
    properties = snapshot.event_properties()
    properties["$feature/a"] = "changed"
    assert snapshot.event_properties()["$feature/a"] is True


def test_reads_from_many_threads_agree_and_send_one_event_per_flag(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(FLAGS)
    client = make_flags_client()
    snapshot = client.evaluate_flags("u")
    results: list[object] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        for _ in range(200):
            results.append((snapshot.get_flag("b"), snapshot.is_enabled("a")))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {("variant", True)}
    assert client.flush(timeout=5)
    called = flags_server.events_named("$feature_flag_called")
    assert sorted(event["properties"]["$feature_flag"] for event in called) == ["a", "b"]
    assert set(snapshot.only_accessed().keys) == {"a", "b"}


def test_nothing_raises_into_the_app(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_flags_client(flag_defaults={"a": "safe"})

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(client._flags, "evaluate", explode)
    monkeypatch.setattr(client._flags, "prepare", explode)
    assert client.get_feature_flag("a", "u") == "safe"
    assert client.feature_enabled("a", "u") is True
    assert client.get_feature_flag_payload("a", "u") is None
    assert client.get_all_flags("u") == {"a": "safe"}
    assert client.evaluate_flags("u").get_flag("a") == "safe"


def test_the_context_identity_is_used_by_the_facade(
    flags_server: FlagsServer,
) -> None:
    flags_server.respond_with(FLAGS)
    client = Client(API_KEY, host=flags_server.url)
    try:
        with client.new_context():
            posthog.identify_context("ctx-user")
            assert posthog.get_feature_flag("b") == "variant"
            assert posthog.evaluate_flags().get_flag("a") is True
            assert posthog.feature_enabled("c") is False
            assert posthog.get_feature_flag_payload("a") == {"x": 1}
            assert posthog.get_all_flags() == {"a": True, "b": "variant", "c": False}
    finally:
        client.shutdown(timeout=2)
    assert {r.body["distinct_id"] for r in flags_server.flags_requests} == {"ctx-user"}
    assert len(flags_server.flags_requests) == 5
