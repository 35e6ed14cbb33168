"""A forked child (a gunicorn or uWSGI worker) polls for itself, on a connection of its own,
even when the fork happened while the parent's poller held its lock."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.local.test_poller import DEFINITIONS, SECRET
from tests.forking import child_exit_code

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    # Python 3.12+ warns that forking a threaded process can deadlock: that is what is tested.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.fixture
def definitions_sink() -> Iterator[LocalSink]:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


def _child(client: Client, parent_source: object, parent_thread: object) -> int:
    """What the child checks; 0 when all is well, else the number of the first failed check."""
    poller = client._flags._poller
    assert poller is not None
    definitions = client._flag_definitions()  # the parent's, at once; starts the child's thread
    if definitions is None or list(definitions.flags) != ["beta"]:
        return 11
    thread = poller._thread
    if thread is None or thread is parent_thread or not thread.is_alive():
        return 12
    done = poller._polls_done
    deadline = time.monotonic() + 15
    while poller._polls_done < done + 2:  # two polls of the child's own thread, at the interval
        if time.monotonic() > deadline:
            return 13
        time.sleep(0.02)
    source = poller._source
    if source is None or source is parent_source:
        return 14
    if not client.load_flags(timeout=10):
        return 15
    return 0


def test_a_forked_child_polls_for_itself_with_its_own_connection(
    definitions_sink: LocalSink,
) -> None:
    client = Client(API_KEY, host=definitions_sink.url, secret_key=SECRET, poll_interval=0.2)
    try:
        assert client.load_flags() is True
        poller = client._flags._poller
        assert poller is not None
        parent_source, parent_thread = poller._source, poller._thread
        assert parent_source is not None
        # Fork while another thread holds the poller's lock: the child must not inherit it held.
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with poller._changed:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: report by exit status only
            try:
                os._exit(_child(client, parent_source, parent_thread))
            finally:
                os._exit(2)
        release.set()
        holder.join()
        before = len(definitions_sink.requests())
        hung = "the forked child hung loading flag definitions"
        assert child_exit_code(pid, timeout=30, hung=hung) == 0
        # The parent's own poller went on polling meanwhile, with its own source.
        assert poller._source is parent_source
        assert poller._thread is parent_thread
        assert parent_thread is not None
        assert parent_thread.is_alive()
        assert len(definitions_sink.requests()) > before
    finally:
        client.shutdown(timeout=2)
