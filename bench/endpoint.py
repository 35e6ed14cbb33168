"""The local capture endpoint, run in a child process so its work never takes the client's GIL.

The child runs :class:`posthog_integrations.sink.LocalSink`, answering ``/flags`` from
:data:`BENCH_FLAGS`, and answers small commands sent over
a :func:`multiprocessing.Pipe`:

``("delivered", api_key, expected, timeout)``
    wait until ``expected`` distinct events of ``api_key`` were accepted (or none came for a
    few seconds, or ``timeout`` passed), then reply with a :class:`Delivery` as a dict;
``("flags_requests",)``
    reply with how many ``/flags`` requests the endpoint answered since the last clear;
``("clear",)``
    forget every stored event and recorded request (keeps the child's memory flat), and
    restart the endpoint's CPU clock;
``("stop",)``
    stop the sink and exit.

Each reply is ``("ok", payload)`` or ``("error", message)``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections import Counter
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

__all__ = ["BENCH_FLAGS", "READ_FLAG", "READ_FLAG_VALUE", "V1_PATH", "Delivery", "Endpoint",
           "EndpointError"]

# Where clients in capture v1 mode send their batches (without the optional trailing slash).
V1_PATH = "/i/v1/analytics/events"
_START_TIMEOUT = 60.0
_REPLY_TIMEOUT = 120.0
_POLL = 0.02
# Stop waiting for late events once none arrived for this long.
_SETTLE = 3.0

READ_FLAG = "new-checkout"
READ_FLAG_VALUE = "test"
# The flags /flags answers with: five, the same for everyone (see bench.flags).
BENCH_FLAGS: dict[str, Any] = {
    "flags": {
        READ_FLAG: READ_FLAG_VALUE,
        "dark-mode": True,
        "beta-banner": False,
        "search-v2": "control",
        "fast-checkout": True,
    },
}


class EndpointError(RuntimeError):
    """The endpoint process failed, or did not answer in time."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What the endpoint received for one API key.

    ``unique`` counts distinct event uuids in accepted (2xx) requests; ``accepted`` counts them
    with repeats (a retried batch is counted again). ``stored_total`` is every event in the
    store, whatever its key.
    """

    api_key: str
    expected: int
    accepted: int
    unique: int
    requests: int
    failed_requests: dict[str, int]
    stored_total: int
    waited_s: float
    endpoint_cpu_s: float  # CPU time of the endpoint process since the last clear
    paths: dict[str, int] = dataclasses.field(default_factory=dict)  # requests per path

    @property
    def v1_only(self) -> bool:
        """Every request went to the capture v1 endpoint (and there was at least one)."""
        return bool(self.paths) and set(self.paths) == {V1_PATH}

    @property
    def complete(self) -> bool:
        return self.unique == self.expected

    @property
    def duplicates(self) -> int:
        return self.accepted - self.unique

    def describe(self) -> str:
        text = f"{self.unique:,} of {self.expected:,} events arrived"
        if self.duplicates:
            text += f" ({self.duplicates:,} duplicates)"
        if self.failed_requests:
            text += f"; non-2xx answers: {self.failed_requests}"
        return text


# -- the child process ---------------------------------------------------------------------


def _count(
    sink: Any, api_key: str
) -> tuple[int, int, int, dict[str, int], dict[str, int]]:
    uuids: list[str] = []
    requests = 0
    failed: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    for request in sink.requests():
        if request.api_key != api_key:
            continue
        requests += 1
        paths[request.path.rstrip("/")] += 1
        if 200 <= request.status < 300:
            uuids.extend(request.uuids)
        else:
            failed[str(request.status)] += 1
    return len(uuids), len(set(uuids)), requests, dict(failed), dict(paths)


def _delivered(
    sink: Any, api_key: str, expected: int, timeout: float, cpu_since: float
) -> dict[str, Any]:
    """Counts for ``api_key`` once ``expected`` arrived, nothing new came for a while, or
    ``timeout`` passed. Both clients' flush waits for the answers, so this rarely waits."""
    start = last_change = time.monotonic()
    previous = -1
    while True:
        accepted, unique, requests, failed, paths = _count(sink, api_key)
        now = time.monotonic()
        if unique != previous:
            previous, last_change = unique, now
        if unique >= expected or now - start >= timeout or now - last_change >= _SETTLE:
            break
        time.sleep(_POLL)
    return dataclasses.asdict(Delivery(
        api_key=api_key, expected=expected, accepted=accepted, unique=unique,
        requests=requests, failed_requests=failed, stored_total=sink.store.count(),
        waited_s=time.monotonic() - start, endpoint_cpu_s=time.process_time() - cpu_since,
        paths=paths,
    ))


def _child_main(conn: Connection) -> None:
    """Entry point of the endpoint process."""
    try:
        from posthog_integrations.sink import LocalSink

        sink = LocalSink(flags=BENCH_FLAGS).start()
    except BaseException as exc:
        conn.send(("error", f"the local sink did not start: {exc!r}"))
        return
    try:
        conn.send(("ok", sink.url))
        cpu_since = time.process_time()
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent went away
                return
            command = message[0]
            try:
                if command == "delivered":
                    _, api_key, expected, timeout = message
                    reply = _delivered(sink, api_key, expected, timeout, cpu_since)
                    conn.send(("ok", reply))
                elif command == "flags_requests":
                    conn.send(("ok", sink.stats()["flags_requests"]))
                elif command == "clear":
                    sink.clear()
                    cpu_since = time.process_time()
                    conn.send(("ok", None))
                elif command == "stop":
                    conn.send(("ok", None))
                    return
                else:
                    conn.send(("error", f"unknown command {command!r}"))
            except Exception as exc:
                conn.send(("error", f"{command} failed: {exc!r}"))
    finally:
        sink.stop()
        sink.store.close()


# -- the parent's handle -------------------------------------------------------------------


class Endpoint:
    """Handle on the endpoint process: ``with Endpoint() as endpoint: ... endpoint.url``."""

    def __init__(self, start_method: str = "spawn") -> None:
        self._context: Any = multiprocessing.get_context(start_method)
        self._conn: Connection | None = None
        self._process: Any = None
        self.url = ""

    def start(self) -> Endpoint:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_child_main, args=(child,), name="bench-endpoint", daemon=True
        )
        process.start()
        child.close()
        self._conn, self._process = parent, process
        url = self._call(None, _START_TIMEOUT)
        if not isinstance(url, str):
            raise EndpointError(f"unexpected start reply {url!r}")
        self.url = url
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def delivered(self, api_key: str, expected: int, timeout: float = 10.0) -> Delivery:
        """Counts for ``api_key``, once ``expected`` events arrived or ``timeout`` passed."""
        payload = self._call(("delivered", api_key, expected, timeout), timeout + _REPLY_TIMEOUT)
        return Delivery(**payload)

    def flags_requests(self) -> int:
        """``/flags`` requests answered since the last clear."""
        return int(self._call(("flags_requests",), _REPLY_TIMEOUT))

    def clear(self) -> None:
        self._call(("clear",), _REPLY_TIMEOUT)

    def stop(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            try:
                conn.send(("stop",))
                if conn.poll(10.0):
                    conn.recv()
            except (EOFError, OSError):
                pass
            conn.close()
        if process is not None:
            process.join(10.0)
            if process.is_alive():
                process.terminate()
                process.join(5.0)

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, message: tuple[Any, ...] | None, timeout: float) -> Any:
        conn = self._conn
        if conn is None:
            raise EndpointError("the endpoint is not running")
        try:
            if message is not None:
                conn.send(message)
            if not conn.poll(timeout):
                raise EndpointError(f"the endpoint did not answer within {timeout:g}s")
            status, payload = conn.recv()
        except (EOFError, OSError) as exc:
            raise EndpointError(f"the endpoint process died: {exc!r}") from exc
        if status != "ok":
            raise EndpointError(str(payload))
        return payload
