"""The wait recorder used by the fault and saturation tests sees the waits it must see."""

from __future__ import annotations

from posthog_integrations.sink import LocalSink
from tests.blocking import WaitRecorder
from tests.conftest import ClientFactory


def test_a_capture_that_sends_is_seen_waiting(sink: LocalSink,
                                              make_client: ClientFactory) -> None:
    client = make_client(sync_mode=True)
    recorder = WaitRecorder()
    with recorder.watching():
        client.capture("sent in this thread", distinct_id="u")
    assert len(sink.events()) == 1
    assert any(call.startswith(("socket.", "http.client.")) for call in recorder.calls), \
        recorder.calls


def test_a_flush_is_seen_waiting(make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("queued", distinct_id="u")
    recorder = WaitRecorder()
    with recorder.watching():
        assert client.flush()
    assert recorder.calls["threading.wait"] >= 1


def test_a_queued_capture_makes_no_waiting_call(make_client: ClientFactory) -> None:
    client = make_client()
    client.capture("starts the sender", distinct_id="u")
    recorder = WaitRecorder()
    with recorder.watching():
        for index in range(100):
            client.capture("queued", distinct_id="u", properties={"i": index})
    assert recorder.calls == {}
