"""The client against the project's own local endpoint answering /flags from a flags file: the
whole path a developer runs without an account, over real loopback HTTP."""

from __future__ import annotations

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY

FLAGS = {
    "flags": {"new-checkout": "test", "dark-mode": True, "beta": False},
    "payloads": {"new-checkout": {"color": "blue"}},
    "distinct_ids": {"user-42": {"new-checkout": "control"}},
}


def test_flags_from_the_local_endpoint_ride_on_events_and_report_their_reads() -> None:
    with LocalSink(flags=FLAGS) as sink:
        client = Client(API_KEY, host=sink.url)
        try:
            snapshot = client.evaluate_flags("user-7")
            assert snapshot.get_flag("new-checkout") == "test"
            assert snapshot.get_flag_payload("new-checkout") == {"color": "blue"}
            assert snapshot.is_enabled("dark-mode")
            assert not snapshot.is_enabled("beta")
            assert client.get_feature_flag("new-checkout", "user-42") == "control"
            client.capture("checkout started", distinct_id="user-7", flags=snapshot)
            assert client.flush(timeout=5)
        finally:
            client.shutdown(timeout=2)
        flag_requests = [r for r in sink.requests() if r.path.rstrip("/") == "/flags"]
        assert len(flag_requests) == 2  # one per snapshot, one for the single getter
        assert flag_requests[1].body["flag_keys_to_evaluate"] == ["new-checkout"]
        [checkout] = sink.events(event="checkout started")
        properties = checkout["properties"]
        assert properties["$feature/new-checkout"] == "test"
        assert properties["$feature/beta"] is False
        assert properties["$active_feature_flags"] == ["dark-mode", "new-checkout"]
        reads = {(e["distinct_id"], e["properties"]["$feature_flag"],
                  e["properties"]["$feature_flag_response"])
                 for e in sink.events(event="$feature_flag_called")}
        assert reads == {("user-7", "new-checkout", "test"), ("user-7", "dark-mode", True),
                         ("user-7", "beta", False), ("user-42", "new-checkout", "control")}
