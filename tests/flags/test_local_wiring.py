"""A client with a secret key decides flags from the polled definitions: no /flags request for
what they decide, one request for exactly the undecided flags, none with
``only_evaluate_locally``; reads say ``locally_evaluated``. Real HTTP to the local endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

import posthog_integrations as posthog
from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.local_wiring import ALL_LOCAL, SECRET, WITH_STATIC_COHORT, flags_requests

PRO = {"plan": "pro"}
ACME = {"company": "acme"}
ClientFactory = Callable[[dict[str, Any]], tuple[Client, LocalSink]]


@pytest.fixture
def local_client() -> Iterator[ClientFactory]:
    """A client whose definitions are loaded from a sink serving ``definitions``."""
    opened: list[tuple[Client, LocalSink]] = []

    def factory(definitions: dict[str, Any], **flags: Any) -> tuple[Client, LocalSink]:
        sink = LocalSink(definitions=definitions, flags=flags or None).__enter__()
        client = Client(API_KEY, host=sink.url, secret_key=SECRET)
        opened.append((client, sink))
        assert client.load_flags(timeout=10)
        return client, sink

    yield factory
    for client, sink in opened:
        client.shutdown(timeout=2)
        sink.__exit__(None, None, None)


def test_flags_all_decided_locally_make_no_flags_request(local_client: ClientFactory) -> None:
    client, sink = local_client(ALL_LOCAL)
    snapshot = client.evaluate_flags("u-1", person_properties=PRO, groups=ACME)
    assert snapshot.values() == {"everyone": True, "pro-plan": True, "company-beta": True}
    assert snapshot.get_flag_payload("everyone") == {"color": "blue"}
    assert client.get_feature_flag("pro-plan", "u-1", person_properties=PRO) is True
    assert client.feature_enabled("company-beta", "u-1") is False  # no group passed
    assert client.get_feature_flag_payload("everyone", "u-1") == {"color": "blue"}
    assert client.get_all_flags("u-1", person_properties=PRO) == {
        "everyone": True, "pro-plan": True, "company-beta": False}
    assert flags_requests(sink) == []


def test_one_undecided_flag_costs_one_request_for_it_alone(local_client: ClientFactory) -> None:
    client, sink = local_client(WITH_STATIC_COHORT, flags={"static-cohort": True,
                                                           "everyone": False})
    snapshot = client.evaluate_flags("u-1", person_properties=PRO, groups=ACME)
    assert snapshot.get_flag("static-cohort") is True  # from the server
    assert snapshot.get_flag("everyone") is True  # decided locally, kept
    [request] = flags_requests(sink)
    assert request.body["flag_keys_to_evaluate"] == ["static-cohort"]


def test_a_property_the_caller_does_not_pass_leaves_only_its_flag_to_the_server(
    local_client: ClientFactory,
) -> None:
    client, sink = local_client(ALL_LOCAL, flags={"pro-plan": "remote"})
    assert client.get_feature_flag("everyone", "u-1") is True
    assert client.get_feature_flag("pro-plan", "u-1") == "remote"
    assert client.evaluate_flags("u-1").values() == {
        "everyone": True, "pro-plan": "remote", "company-beta": False}
    with posthog.new_context(client=client):
        posthog.identify_context("u-2")
        assert client.flags().get_flag("pro-plan") == "remote"
    assert [r.body["flag_keys_to_evaluate"] for r in flags_requests(sink)] == [
        ["pro-plan"], ["pro-plan"], ["pro-plan"]]


def test_only_evaluate_locally_makes_no_request_and_undecided_flags_read_unknown(
    local_client: ClientFactory,
) -> None:
    client, sink = local_client(WITH_STATIC_COHORT, flags={"static-cohort": True})
    snapshot = client.evaluate_flags("u-1", person_properties=PRO, only_evaluate_locally=True)
    assert snapshot.get_flag("everyone") is True
    assert snapshot.get_flag("static-cohort") is None
    assert client.get_feature_flag("static-cohort", "u-1", only_evaluate_locally=True) is None
    assert client.get_feature_flag("everyone", "u-1", only_evaluate_locally=True) is True
    assert flags_requests(sink) == []
    assert client.flush(timeout=5)
    [missing] = [e for e in sink.events(event="$feature_flag_called")
                 if e["properties"]["$feature_flag"] == "static-cohort"]
    assert missing["properties"]["$feature_flag_error"] == "local_evaluation_inconclusive"


def test_feature_flag_called_says_which_flags_were_decided_locally(
    local_client: ClientFactory,
) -> None:
    client, sink = local_client(WITH_STATIC_COHORT, flags={"static-cohort": True})
    snapshot = client.evaluate_flags("u-1", person_properties=PRO)
    assert snapshot.is_enabled("everyone")
    assert snapshot.is_enabled("static-cohort")
    assert client.flush(timeout=5)
    called = {e["properties"]["$feature_flag"]: e["properties"]
              for e in sink.events(event="$feature_flag_called")}
    local, remote = called["everyone"], called["static-cohort"]
    assert local["locally_evaluated"] is True
    assert local["$feature_flag_reason"] == "Evaluated locally"
    assert (local["$feature_flag_id"], local["$feature_flag_version"]) == (11, 3)
    assert local["$feature_flag_payload"] == {"color": "blue"}
    assert remote["locally_evaluated"] is False


def test_before_definitions_load_flags_are_asked_of_the_server_as_before() -> None:
    with LocalSink(definitions=ALL_LOCAL, flags={"flags": {"everyone": False}}) as sink:
        sink.script_definitions(500)
        client = Client(API_KEY, host=sink.url, secret_key=SECRET)
        try:
            assert client.evaluate_flags("u-1").get_flag("everyone") is False
        finally:
            client.shutdown(timeout=2)
        [request] = flags_requests(sink)
        assert "flag_keys_to_evaluate" not in request.body
