"""Every answer shape is read (spec §3): v2 records, v4 typed records and the legacy maps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer

V2 = {
    "flags": {
        "on": {"key": "on", "enabled": True, "variant": None,
               "metadata": {"id": 7, "version": 3, "payload": "{\"a\": 1}"}},
        "split": {"key": "split", "enabled": True, "variant": "b", "metadata": {"id": 8}},
        "off": {"key": "off", "enabled": False, "variant": None},
        "broken": {"key": "broken", "enabled": True, "failed": True},
        "odd": {"key": "odd", "enabled": True, "metadata": {"id": "x"}},
    },
    "errorsWhileComputingFlags": False, "requestId": "req-1", "evaluatedAt": 1640995200000,
}
V4 = {
    "flags": {
        "on": {"key": "on", "value": True, "metadata": {"payload": "{\"a\": 1}"}},
        "split": {"key": "split", "value": "b"},
        "off": {"key": "off", "value": False},
        "numeric": {"key": "numeric", "value": {"n": 2}, "metadata": {"payload": "ignored"}},
        "broken": {"key": "broken", "value": None, "failed": True},
    },
    "requestId": "req-4",
}
LEGACY = {
    "featureFlags": {"on": True, "split": "b", "off": False},
    "featureFlagPayloads": {"on": "{\"a\": 1}"},
}


@pytest.mark.parametrize("body", [V2, V4, LEGACY], ids=["v2", "v4", "legacy"])
def test_each_shape_reads_as_the_same_values(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, body: dict[str, Any]
) -> None:
    flags_server.respond_with(body)
    snapshot = make_flags_client().evaluate_flags("u")

    assert snapshot.get_flag("on") is True
    assert snapshot.get_flag("split") == "b"
    assert snapshot.get_flag("off") is False
    assert snapshot.is_enabled("split")
    assert not snapshot.is_enabled("off")
    assert snapshot.get_flag_payload("on") == {"a": 1}
    assert snapshot.get_flag("broken") is None
    assert snapshot.get_flag("absent", "fallback") == "fallback"
    assert {"on", "split", "off"} <= set(snapshot.keys)
    assert "broken" not in snapshot.keys


def test_v2_metadata_and_response_fields_are_kept(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(V2)
    snapshot = make_flags_client().evaluate_flags("u")
    assert (snapshot.request_id, snapshot.evaluated_at) == ("req-1", 1640995200000)
    assert snapshot.get_flag("odd") is None  # a wrong type fails that record alone
    assert snapshot.get_flag("on") is True


def test_a_v4_number_or_object_value_means_on_and_is_its_own_payload(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with(V4)
    snapshot = make_flags_client().evaluate_flags("u")
    assert snapshot.get_flag("numeric") is True
    assert snapshot.get_flag_payload("numeric") == {"n": 2}


def test_quota_limited_reads_as_the_defaults_without_raising(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    flags_server.respond_with({"flags": {}, "quotaLimited": ["feature_flags"],
                               "featureFlags": {"f": True}})
    client = make_flags_client(flag_defaults={"f": "safe"})
    snapshot = client.evaluate_flags("u")
    assert snapshot.failure == "quota_limited"
    assert snapshot.get_flag("f") == "safe"
    assert snapshot.is_enabled("other") is False
    assert client.get_feature_flag("f", "u") == "safe"
    assert client.get_feature_flag("other", "u") is None
    assert client.feature_enabled("other", "u") is None
    assert "quota limited" in caplog.text


@pytest.mark.parametrize("answer", [b"not json", b"[1, 2]", b'{"flags": 3}'])
def test_an_unreadable_answer_reads_as_the_defaults(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory, answer: bytes
) -> None:
    from tests.flags.flags_server import Answer

    flags_server.script(Answer(200, answer))
    client = make_flags_client(flag_defaults={"f": True})
    snapshot = client.evaluate_flags("u")
    assert snapshot.get_flag("f") is True
    assert snapshot.keys == ()


def test_an_answer_larger_than_the_bound_is_refused_whole(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags = {f"flag-{i}": "x" * 100 for i in range(12_000)}  # about 1.4 MB
    flags_server.respond_with({"featureFlags": flags})
    snapshot = make_flags_client().evaluate_flags("u")
    assert snapshot.failure == "unknown_error"
    assert snapshot.keys == ()


def test_an_answer_of_tens_of_kilobytes_is_read(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags = {f"flag-{i}": True for i in range(2000)}
    payloads = {f"flag-{i}": '{"text": "' + "p" * 20 + '"}' for i in range(2000)}
    flags_server.respond_with({"featureFlags": flags, "featureFlagPayloads": payloads})
    snapshot = make_flags_client().evaluate_flags("u")
    assert len(snapshot.keys) == 2000
    assert snapshot.get_flag_payload("flag-1999") == {"text": "p" * 20}
