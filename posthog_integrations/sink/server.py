"""Run the sink in-process on a thread (:class:`LocalSink`) or blocking (:func:`serve`)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import (
    MAX_RECORDED_BYTES,
    MAX_RECORDED_REQUESTS,
    RecordedRequest,
    ScriptedResponse,
    SinkApp,
    check_respond,
)
from .definitions import DefinitionsFile, DefinitionsSetting
from .flags import FlagSource, FlagsSetting
from .store import EventStore
from .terminal import printable

__all__ = ["LocalSink", "serve"]

# How often the accept loop checks for shutdown: bounds how long stop() takes.
_POLL_INTERVAL = 0.01
# How long stop() waits for released requests to finish before giving up on them.
_DRAIN_TIMEOUT = 0.5


class _Handler(WSGIRequestHandler):
    """werkzeug's handler without per-request log lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Print nothing: the sink echoes events, not requests."""

    def connection_dropped(
        self, error: BaseException, environ: dict[str, Any] | None = None
    ) -> None:
        # Without this an HTTP/1.1 connection would wait for another request line.
        self.close_connection = True


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _echo(events: list[dict[str, Any]], endpoint: str) -> None:
    """Print one line per event to stdout; never the API key, never a control character."""
    now = datetime.now().strftime("%H:%M:%S")
    lines = []
    for event in events:
        props = event.get("properties")
        session = props.get("$session_id") if isinstance(props, dict) else None
        name, distinct_id = printable(event.get("event")), printable(event.get("distinct_id"))
        line = f"{now}  {name}  distinct_id={distinct_id}"
        if session is not None:
            line += f"  session={printable(session)}"
        lines.append(f"{line}  {printable(endpoint)}\n")
    _write("".join(lines))


def _write(text: str) -> None:
    # Escape what the console cannot show rather than fail the request.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()


class LocalSink:
    """A PostHog-compatible capture endpoint served from a background thread.

    ``with LocalSink() as sink:`` starts it on a free port of 127.0.0.1; point a
    client at ``sink.url`` and inspect ``sink.events()`` / ``sink.requests()``.
    The store stays readable after :meth:`stop`.

    Memory stays bounded: an in-memory store keeps the newest ``max_events``
    (``MAX_MEMORY_EVENTS`` by default), and ``requests()`` the newest
    ``max_recorded_requests`` requests holding at most ``max_recorded_bytes`` of raw body.
    ``respond`` (400 to 599) answers every capture request with that status and stores
    nothing, as PostHog would a wrong API key (401) or an outage (503); scripted answers
    still go first. Bodies over 10 MiB, sent or inflated, are answered 413; requests whose
    Host header does not name the sink 421; browser requests from other sites 403.
    :meth:`stats` counts each.

    ``POST /flags`` answers in PostHog's v2 shape from ``flags``: a path to a flags file
    (re-read when it changes) or a mapping in the same format (see
    :mod:`posthog_integrations.sink.flags`); without it every flag is unknown. An invalid
    configuration raises ValueError.

    ``GET /flags/definitions`` answers, for local evaluation, from ``definitions``: a path to a
    definitions file (re-read when it changes) or a mapping in PostHog's format (see
    :mod:`posthog_integrations.sink.definitions`), with an ETag; without it, no flag. Given
    definitions, ``POST /flags`` evaluates them for the request's person and groups with the
    library's local engine (see :mod:`posthog_integrations.sink.evaluated`), so ``flags`` and
    ``definitions`` are not given together.
    """

    def __init__(
        self,
        db_path: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        echo: bool = False,
        max_events: int | None = None,
        max_recorded_requests: int = MAX_RECORDED_REQUESTS,
        max_recorded_bytes: int = MAX_RECORDED_BYTES,
        flags: FlagsSetting = None,
        respond: int | None = None,
        definitions: DefinitionsSetting = None,
    ) -> None:
        # First: a bad configuration opens no database.
        self.flags = FlagSource(flags)
        self.definitions = DefinitionsFile(definitions)
        check_respond(respond)
        self.store = EventStore(db_path, max_events=max_events)
        self.host = host
        self.port = port
        self.echo = echo
        self._stored = threading.Condition()
        self._app = SinkApp(
            self.store,
            on_stored=self._on_stored,
            flags=self.flags,
            definitions=self.definitions,
            max_recorded_requests=max_recorded_requests,
            max_recorded_bytes=max_recorded_bytes,
            respond=respond,
            on_responded=self._on_responded,
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running sink, e.g. ``http://127.0.0.1:8010``."""
        if self._server is None:
            raise RuntimeError("the sink is not running; call start() first")
        return f"http://{_display_host(self.host)}:{self.port}"

    def start(self) -> LocalSink:
        """Start serving (no-op when already started); returns self."""
        if self._server is not None:
            return self
        try:
            server = make_server(
                self.host, self.port, self._app, threaded=True, request_handler=_Handler
            )
        except SystemExit as exc:  # werkzeug exits when it cannot bind
            raise OSError(f"cannot listen on {self.host}:{self.port}") from exc
        self.port = server.port
        self._app.serve_at(self.host, self.port)
        self._app.resume()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"posthog-sink:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed and hanging requests get their connection closed."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._app.release()
        server.shutdown()
        thread.join()
        server.server_close()
        self._app.wait_idle(_DRAIN_TIMEOUT)
        with self._stored:
            self._stored.notify_all()

    def __enter__(self) -> LocalSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def events(
        self,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
        session_id: str | None = None,
        api_key: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Stored events exactly as received (see :meth:`EventStore.events`)."""
        return self.store.events(
            event=event,
            distinct_id=distinct_id,
            session_id=session_id,
            api_key=api_key,
            limit=limit,
            newest_first=newest_first,
        )

    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded capture and /flags requests, oldest first (the newest kept)."""
        return self._app.requests()

    def stats(self) -> dict[str, int]:
        """Events dropped, /flags requests, requests forgotten, and refusals by reason."""
        return {"events_dropped": self.store.dropped(), **self._app.stats()}

    def script(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next capture requests, one each; then 200 again."""
        self._app.script(*responses)

    def script_flags(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next /flags requests, one each; then the flags again.

        A scripted 2xx without a ``body`` answers from the flags (after any ``delay``).
        """
        self._app.script_flags(*responses)

    def script_definitions(self, *responses: ScriptedResponse | int) -> None:
        """Queue answers for the next /flags/definitions requests, one each; then the
        definitions again. A scripted 2xx without a ``body`` answers from the definitions."""
        self._app.script_definitions(*responses)

    def clear(self) -> None:
        """Forget stored events, recorded requests and queued answers."""
        self._app.clear()
        self.store.clear()

    def wait_for_events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events are stored and return them all.

        Raises AssertionError when ``timeout`` seconds pass first.
        """
        with self._stored:
            arrived = self._stored.wait_for(lambda: self.store.count() >= count, timeout)
        if not arrived:
            names = [e.get("event") for e in self.store.events(limit=20)]
            statuses = Counter(r.status for r in self._app.requests())
            raise AssertionError(
                f"expected at least {count} event(s) within {timeout:g}s but"
                f" {self.store.count()} arrived (first names: {names});"
                f" capture requests by answered status: {dict(statuses)}"
            )
        return self.store.events()

    def _on_responded(self, status: int, event_count: int, endpoint: str) -> None:
        if self.echo:
            now = datetime.now().strftime("%H:%M:%S")
            plural = "" if event_count == 1 else "s"
            _write(f"{now}  answered {status}: {event_count} event{plural} not stored"
                   f"  {printable(endpoint)}\n")

    def _on_stored(self, events: list[dict[str, Any]], endpoint: str) -> None:
        if self.echo:
            _echo(events, endpoint)
        with self._stored:
            self._stored.notify_all()


def serve(
    host: str,
    port: int,
    db_path: str | None,
    echo: bool = True,
    flags: str | None = None,
    respond: int | None = None,
    definitions: str | None = None,
) -> None:
    """Serve the sink until Ctrl-C, printing its URL and (with ``echo``) every event.

    ``flags`` is a flags file answered at /flags, ``definitions`` a definitions file answered at
    /flags/definitions; ValueError when one is invalid. ``respond``
    answers every capture request with that status (see :class:`LocalSink`).
    """
    sink = LocalSink(db_path, host=host, port=port, echo=echo, flags=flags, respond=respond,
                     definitions=definitions)
    handler = _log_flag_reloads()
    try:
        sink.start()
        print(f"PostHog sink listening on {sink.url}", flush=True)
        where = db_path or f"memory (lost on exit; the newest {sink.store.max_events:,} kept)"
        print(f"  events are stored in {where} ({sink.store.count()} there now)")
        if sink.flags.path is not None:
            print(
                f"  feature flags from {sink.flags.path} ({sink.flags.summary()});"
                " edits apply without a restart"
            )
        if sink.definitions.path is not None:
            print(
                f"  flag definitions from {sink.definitions.path}"
                f" ({sink.definitions.current().summary()}), served at /flags/definitions and"
                " evaluated at /flags; edits apply without a restart"
            )
        if respond is not None:
            print(f"  answers every capture request with {respond} and stores nothing (--respond)")
        print(f"  point a client at it:  POSTHOG_HOST={sink.url}")
        print(f"  watch them live:       {sink.url}/  (JSON at {sink.url}/api/events)")
        print("  press Ctrl-C to stop", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        logging.getLogger("posthog_integrations.sink").removeHandler(handler)
        sink.stop()
        sink.store.close()


def _log_flag_reloads() -> logging.Handler:
    """Print the sink's log lines (a flags file re-read or refused) to stderr, one each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.INFO)
    sink_logger = logging.getLogger("posthog_integrations.sink")
    sink_logger.addHandler(handler)
    if sink_logger.getEffectiveLevel() > logging.INFO:
        sink_logger.setLevel(logging.INFO)
    return handler
