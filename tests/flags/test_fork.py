"""A forked child (gunicorn, uWSGI) evaluates flags even if the fork happened mid-evaluation."""

from __future__ import annotations

import os
import threading

import pytest

from tests.flags.conftest import FlagsClientFactory
from tests.flags.flags_server import FlagsServer
from tests.forking import child_exit_code

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    # Python 3.12+ warns that forking a threaded process can deadlock: that is what is tested.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def test_a_child_forked_while_a_flags_lock_was_held_still_evaluates(
    flags_server: FlagsServer, make_flags_client: FlagsClientFactory
) -> None:
    flags_server.respond_with({"featureFlags": {"f": "v"}})
    client = make_flags_client()
    assert client.get_feature_flag("f", "parent") == "v"  # the parent has a pooled connection
    # Forking while another thread holds these locks leaves them held in the child.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with client._flags._lock, client._flags._tracker._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    pid = os.fork()
    if pid != 0:
        release.set()
        holder.join()
    if pid == 0:  # the child: report by exit status only
        try:
            os._exit(0 if client.get_feature_flag("f", "child") == "v" else 1)
        finally:
            os._exit(2)
    assert child_exit_code(pid, timeout=20, hung="the forked child hung evaluating flags") == 0
    assert [r.body["distinct_id"] for r in flags_server.flags_requests] == ["parent", "child"]
