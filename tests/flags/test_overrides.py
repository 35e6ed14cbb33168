"""override_flags() and the posthog_flags fixture: every client answers from the overrides,
with no request to the (real, loopback) flags server, and reports its reads as usual."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.feature_flags import overrides
from posthog_integrations.testing import (
    CapturedEvents,
    FlagOverrideControl,
    capture_events,
    override_flags,
)
from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer

SERVER_FLAGS = {"flags": {"new-checkout": {"key": "new-checkout", "enabled": True,
                                           "variant": "control"}}}
OVERRIDES: dict[str, Any] = {"new-checkout": "test", "dark-mode": True, "beta": False}
PAYLOADS = {"new-checkout": {"color": "blue"}}


@pytest.fixture
def client(flags_server: FlagsServer, make_flags_client: FlagsClientFactory) -> Client:
    flags_server.respond_with(SERVER_FLAGS)
    return make_flags_client()


def test_every_read_answers_from_the_overrides_without_a_request(
    flags_server: FlagsServer, client: Client
) -> None:
    with override_flags(OVERRIDES, payloads=PAYLOADS):
        snapshot = client.evaluate_flags("user-1")
        assert snapshot.get_flag("new-checkout") == "test"
        assert snapshot.is_enabled("dark-mode")
        assert snapshot.get_flag("beta") is False
        assert snapshot.get_flag_payload("new-checkout") == {"color": "blue"}
        assert snapshot.get_flag_payload("dark-mode") is None
        assert sorted(snapshot.keys) == ["beta", "dark-mode", "new-checkout"]
        assert client.get_feature_flag("new-checkout", "user-1") == "test"
        assert client.feature_enabled("dark-mode", "user-1") is True
        assert client.feature_enabled("beta", "user-1") is False
        assert client.get_feature_flag_payload("new-checkout", "user-1") == {"color": "blue"}
        assert client.get_all_flags("user-1") == OVERRIDES
        assert client.evaluate_flags("user-1", flag_keys=["beta"]).keys == ("beta",)
    assert flags_server.flags_requests == []


def test_a_payload_is_a_fresh_copy_each_read(client: Client) -> None:
    payloads = {"new-checkout": {"color": "blue"}}
    with override_flags(OVERRIDES, payloads=payloads):
        payloads["new-checkout"]["color"] = "changed after the call"
        first = client.get_feature_flag_payload("new-checkout", "user-1")
        first["color"] = "changed by the test"
        assert client.get_feature_flag_payload("new-checkout", "user-1") == {"color": "blue"}


def test_a_flag_not_in_the_overrides_is_missing(flags_server: FlagsServer,
                                                make_flags_client: FlagsClientFactory) -> None:
    flags_server.respond_with(SERVER_FLAGS)
    client = make_flags_client(flag_defaults={"fallback": "safe"})
    with capture_events() as events, override_flags({"dark-mode": True}):
        assert client.get_feature_flag("new-checkout", "user-1") is None
        assert client.feature_enabled("new-checkout", "user-1") is None
        assert client.evaluate_flags("user-1").get_flag("new-checkout", "default") == "default"
        assert client.get_feature_flag("fallback", "user-1") == "safe"
        assert client.get_feature_flag_payload("new-checkout", "user-1") is None
        assert client.get_all_flags("user-1") == {"dark-mode": True, "fallback": "safe"}
    called = events.named("$feature_flag_called")
    assert [e["properties"]["$feature_flag"] for e in called] == ["new-checkout", "fallback"]
    assert called[0]["properties"]["$feature_flag_error"] == "flag_missing"
    assert called[0]["properties"]["$feature_flag_response"] is None
    assert flags_server.flags_requests == []


def test_the_async_evaluation_answers_from_the_overrides(flags_server: FlagsServer,
                                                         client: Client) -> None:
    with override_flags(OVERRIDES):
        snapshot = asyncio.run(client.aevaluate_flags("user-1"))
    assert snapshot.get_flag("new-checkout") == "test"
    assert flags_server.flags_requests == []


def test_reads_send_feature_flag_called_once_with_the_override_value(client: Client) -> None:
    with capture_events() as events, override_flags(OVERRIDES, payloads=PAYLOADS):
        assert client.get_feature_flag("new-checkout", "user-1") == "test"
        client.evaluate_flags("user-1").get_flag("new-checkout")
        client.evaluate_flags("user-1", groups={"company": "acme"}).get_flag("new-checkout")
        client.get_feature_flag("new-checkout", "user-1", send_feature_flag_events=False)
    called = events.named("$feature_flag_called")
    assert len(called) == 2  # the repeat is deduplicated; other groups are another call
    properties = called[0]["properties"]
    assert called[0]["distinct_id"] == "user-1"
    assert (properties["$feature_flag"], properties["$feature_flag_response"],
            properties["$feature/new-checkout"], properties["$feature_flag_payload"]) == (
        "new-checkout", "test", "test", {"color": "blue"})
    assert "$feature_flag_error" not in properties
    assert called[1]["properties"]["$groups"] == {"company": "acme"}


def test_each_override_block_reports_afresh(client: Client) -> None:
    """Deduplication must not depend on what an earlier test (or block) already read."""
    for _ in range(2):
        with capture_events() as events, override_flags(OVERRIDES):
            client.get_feature_flag("new-checkout", "user-1")
        assert len(events.named("$feature_flag_called")) == 1


def test_capture_with_an_overridden_snapshot_carries_its_values(flags_server: FlagsServer,
                                                                client: Client) -> None:
    with capture_events() as events, override_flags(OVERRIDES):
        snapshot = client.evaluate_flags("user-1")
        client.capture("bought", distinct_id="user-1", flags=snapshot)
    properties = events.one("bought")["properties"]
    assert properties["$feature/new-checkout"] == "test"
    assert properties["$feature/beta"] is False
    assert properties["$active_feature_flags"] == ["dark-mode", "new-checkout"]
    assert flags_server.flags_requests == []


def test_blocks_nest_and_the_real_evaluation_returns_after(flags_server: FlagsServer,
                                                           client: Client) -> None:
    with override_flags({"new-checkout": "outer"}):
        with override_flags({"dark-mode": True}):
            assert client.get_feature_flag("dark-mode", "u") is True
            assert client.get_feature_flag("new-checkout", "u") is None  # inner answers alone
        assert client.get_feature_flag("new-checkout", "u") == "outer"
        assert client.get_feature_flag("dark-mode", "u") is None
    assert flags_server.flags_requests == []
    assert client.get_feature_flag("new-checkout", "u") == "control"
    assert len(flags_server.flags_requests) == 1


def test_the_override_ends_even_when_the_block_raises(client: Client) -> None:
    with pytest.raises(RuntimeError), override_flags({"dark-mode": True}):
        raise RuntimeError("test failure")
    assert overrides.current is None


def test_without_an_identity_reads_give_the_defaults_as_in_production(
    flags_server: FlagsServer, client: Client
) -> None:
    with capture_events() as events, override_flags(OVERRIDES):
        assert client.get_feature_flag("new-checkout") is None
        with posthog.new_context(client=client):
            posthog.identify_context("user-3")
            assert client.get_feature_flag("new-checkout") == "test"
    assert [e["distinct_id"] for e in events.named("$feature_flag_called")] == ["user-3"]
    assert flags_server.flags_requests == []


def test_a_disabled_client_without_a_key_answers_and_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    client = Client()
    assert client.disabled
    assert client.get_feature_flag("new-checkout", "user-1") is None
    with capture_events() as events, override_flags(OVERRIDES, payloads=PAYLOADS):
        assert client.get_feature_flag("new-checkout", "user-1") == "test"
        assert client.get_feature_flag_payload("new-checkout", "user-1") == {"color": "blue"}
    assert events.one("$feature_flag_called")["properties"]["$feature_flag_response"] == "test"


def test_threads_read_while_other_threads_enter_and_leave(flags_server: FlagsServer,
                                                          client: Client) -> None:
    failures: list[str] = []
    start = threading.Barrier(9)

    def read() -> None:
        start.wait()
        for _ in range(300):
            value = client.get_feature_flag("new-checkout", "reader")
            if value not in ("test", "nested"):
                failures.append(repr(value))

    def nest(seed: int) -> None:
        pause = random.Random(seed)
        start.wait()
        for _ in range(100):
            with override_flags({"new-checkout": "nested"}):
                if pause.random() < 0.5:
                    threading.Event().wait(0.0005)

    with override_flags({"new-checkout": "test"}):
        threads = [threading.Thread(target=read) for _ in range(4)]
        threads += [threading.Thread(target=nest, args=(seed,)) for seed in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.get_feature_flag("new-checkout", "reader") == "test"
    assert failures == []
    assert overrides.current is None
    assert flags_server.flags_requests == []


@pytest.mark.parametrize(("flags", "payloads", "error", "message"), [
    (["new-checkout"], None, TypeError, "a mapping"),
    ({"new-checkout": 1}, None, TypeError, "'new-checkout'.*True, False or a variant string"),
    ({"new-checkout": None}, None, TypeError, "True, False or a variant string"),
    ({1: True}, None, TypeError, "flag keys must be strings"),
    ({"": True}, None, ValueError, "empty"),
    ({"new-checkout": ""}, None, ValueError, "empty variant"),
    ({"a": True}, ["a"], TypeError, "payloads must be a mapping"),
    ({"a": True}, {"b": 1}, ValueError, "'b'.*not in the overridden flags"),
    ({"a": False}, {"a": 1}, ValueError, "'a' is off"),
    ({"a": True}, {"a": object()}, TypeError, "'a'.*JSON"),
    ({"a": True}, {"a": float("nan")}, ValueError, "'a'.*JSON"),
])
def test_bad_overrides_are_refused_at_the_call(flags: Any, payloads: Any,
                                               error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        override_flags(flags, payloads=payloads)
    assert overrides.current is None


def test_the_fixture_answers_for_the_test(flags_server: FlagsServer, client: Client,
                                          posthog_flags: FlagOverrideControl,
                                          posthog_events: CapturedEvents) -> None:
    assert client.get_feature_flag("new-checkout", "user-1") is None  # active from the start
    posthog_flags.set({"new-checkout": "test"}, payloads={"new-checkout": [1, 2]})
    assert client.get_feature_flag("new-checkout", "user-1") == "test"
    assert client.get_feature_flag_payload("new-checkout", "user-1") == [1, 2]
    with override_flags({"new-checkout": "inner"}):
        assert client.get_feature_flag("new-checkout", "user-1") == "inner"
    assert client.get_feature_flag("new-checkout", "user-1") == "test"
    posthog_flags.clear()
    assert client.get_feature_flag("new-checkout", "user-1") is None
    with pytest.raises(TypeError):
        posthog_flags.set({"new-checkout": 2})
    responses = [e["properties"]["$feature_flag_response"]
                 for e in posthog_events.named("$feature_flag_called")]
    assert responses == [None, "test", "inner"]
    assert flags_server.flags_requests == []


def test_the_fixture_is_removed_after_its_test(tmp_path: Path) -> None:
    """Run by the installed entry point in a separate pytest: the second test sees no override."""
    (tmp_path / "test_uses_fixture.py").write_text(textwrap.dedent("""
        from posthog_integrations.feature_flags import overrides

        def test_sets(posthog_flags, posthog_events):
            posthog_flags.set({"new-checkout": "test"})
            assert overrides.current is not None

        def test_after():
            assert overrides.current is None
    """))
    # Another test may have set DJANGO_SETTINGS_MODULE, which pytest-django would act on.
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "no:django", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120)
    assert "2 passed" in result.stdout, result.stdout + result.stderr


def test_the_module_functions_answer_too(posthog_flags: FlagOverrideControl,
                                         posthog_events: CapturedEvents) -> None:
    posthog_flags.set({"new-checkout": "test"}, payloads={"new-checkout": "plain text"})
    with posthog.new_context():
        posthog.identify_context("user-4")
        assert posthog.evaluate_flags().get_flag("new-checkout") == "test"
        assert posthog.get_feature_flag_payload("new-checkout") == "plain text"
    assert posthog_events.one("$feature_flag_called")["distinct_id"] == "user-4"
