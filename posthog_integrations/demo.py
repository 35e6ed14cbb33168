"""``posthog-integrations demo``: the example shops, served for real, sending to a local endpoint.

No PostHog account is needed. The demo starts the local capture endpoint on a free loopback
port, answering flag evaluations from the example projects' ``flags.json``, serves the Django
shop under gunicorn, the Flask shop under gunicorn and the Starlette shop under uvicorn, sends
each the same scripted visit with the tracing headers posthog-js sends, stops the servers
(which flush at exit) and shows what arrived, per framework: the flag variant the add-to-cart
view read rides on the events of that request.

The Django shop also hands work to Celery: its order view enqueues a task whose event must
arrive with the visitor's distinct id and session. With ``redis-server`` on PATH, the demo
starts one on a free loopback port and a real ``celery worker -P prefork`` for the shop;
without, it says so and the task runs eagerly, in the request (``CELERY_TASK_ALWAYS_EAGER``).

Ctrl-C (or SIGTERM, or closing the terminal) stops the servers and exits with 128 + the
signal's number. Each server runs in a session of its own, so that only the demo signals it:
a gunicorn worker interrupted by the terminal's Ctrl-C in the middle of a request can hang,
orphaned, and keep its port.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from .demo_processes import free_port, stop, wait_until_listening
from .sink import LocalSink

# In a clone (or an editable install) the example projects sit beside the package; with the
# package installed from a wheel, the demo looks in the working directory, or where it is told.
EXAMPLES = Path(__file__).resolve().parents[1] / "example_projects"
DEMO_KEY = "phc_local_demo"
# What each shop must have sent for its visit, in the visit's order: the add-to-cart view reads
# a flag ($feature_flag_called) before it captures "item added".
EXPECTED = ("$pageview", "signed up", "$feature_flag_called", "item added", "$exception",
            "report streamed")
# A shop with Celery places an order after adding to the cart; its view enqueues a task that
# captures TASK_EVENT, which must carry the identity of the visitor who placed the order.
TASK_EVENT = "order confirmation sent"
ORDER_EVENTS = ("order placed", TASK_EVENT)
TASK_TIMEOUT = 30.0  # for the worker to start, run the task and send its event
# The flag every shop reads in its add-to-cart view, answered from the examples' shared file;
# the "item added" event of that request must carry it.
FLAGS_FILE = "flags.json"
FLAG_PROPERTY = "$feature/checkout-layout"
# Signals that stop the demo as Ctrl-C does; it exits with 128 + the signal's number, as a
# shell reports a command ended by it (130 for Ctrl-C).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """The demo was told to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclasses.dataclass(frozen=True)
class Shop:
    name: str
    folder: str
    server: str
    command: tuple[str, ...]
    needs: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    celery: bool = False  # its order view enqueues a Celery task

    @property
    def expected(self) -> tuple[str, ...]:
        """The events of its visit, in the visit's order."""
        if not self.celery:
            return EXPECTED
        after_cart = EXPECTED.index("item added") + 1
        return EXPECTED[:after_cart] + ORDER_EVENTS + EXPECTED[after_cart:]

    def argv(self, port: int) -> list[str]:
        command = [part.format(port=port) for part in self.command]
        if self.server == "gunicorn" and _gunicorn_has_control_socket():
            command.append("--no-control-socket")  # or each one opens ~/.gunicorn/gunicorn.ctl
        return [sys.executable, "-m", *command]


def _gunicorn_has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS)


SHOPS = (
    Shop("Django", "django_app", "gunicorn",
         ("gunicorn", "--bind", "127.0.0.1:{port}", "--threads", "4", "shop.wsgi"),
         ("django", "gunicorn", "celery"), (("DJANGO_SETTINGS_MODULE", "shop.settings"),),
         celery=True),
    Shop("Flask", "flask_app", "gunicorn",
         ("gunicorn", "--bind", "127.0.0.1:{port}", "--threads", "4", "shop:create_app()"),
         ("flask", "gunicorn")),
    Shop("Starlette", "starlette_app", "uvicorn",
         ("uvicorn", "--port", "{port}", "--log-level", "warning", "shop:app"),
         ("starlette", "uvicorn", "multipart")),
)


def run(keep_open: bool = False, examples: Path | None = None) -> int:
    """Run the demo; 0 when every shop's events arrived, 1 when some did not, 2 when it can't,
    128 + the signal's number when stopped by Ctrl-C (130), SIGTERM or SIGHUP.

    ``examples`` is the ``example_projects`` folder of a clone (default: beside the package,
    else in the working directory).
    """
    try:
        with _stop_signals_interrupt():
            return _run(keep_open, examples)
    except KeyboardInterrupt as interrupt:  # the servers were stopped on the way out
        signum = interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT
        name = signal.Signals(signum).name
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
        print(flush=True)  # after the terminal's ^C
        print(f"posthog-integrations demo: {how}; its servers are stopped", file=sys.stderr)
        return 128 + signum


@contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """Make :data:`STOP_SIGNALS` raise :class:`Stopped` in this (the main) thread meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def _run(keep_open: bool, examples: Path | None) -> int:
    candidates = [examples] if examples is not None else [EXAMPLES, Path("example_projects")]
    folder = next((path.resolve() for path in candidates if (path / "flask_app").is_dir()), None)
    if folder is None:
        print("the demo serves the example projects of a clone of the repository: run it in the "
              "clone, or pass --examples PATH/TO/example_projects", file=sys.stderr)
        return 2
    shops = list(SHOPS)
    missing = sorted({m for shop in shops for m in shop.needs if not _installed(m)})
    if missing:
        print(f"the demo needs {', '.join(missing)}: install the [all] extra (from a clone: "
              "pip install './posthog-integrations[all]')", file=sys.stderr)
        return 2
    try:
        endpoint = LocalSink(flags=folder / FLAGS_FILE)  # started below
    except ValueError as error:
        print(f"the demo answers /flags from the example projects' {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"posthog-integrations demo: {len(shops)} example shops, served for real, sending to "
          "a local capture endpoint")
    with endpoint as sink, ExitStack() as servers:
        print(f"  local capture endpoint and viewer: {sink.url}/")
        print(f"  its flags ({sink.flags.summary()}): {folder / FLAGS_FILE}")
        logs: dict[str, str] = {}
        urls = {}
        visiting = None
        try:
            celery_env = servers.enter_context(_celery_worker(folder, sink.url, logs))
            for shop in shops:
                env = celery_env if shop.celery else {}
                urls[shop.name] = servers.enter_context(
                    _served(shop, folder, sink.url, logs, env))
            for visiting in shops:
                _progress(f"{visiting.name}: sending a visit to {urls[visiting.name]}")
                _visit(urls[visiting.name], visiting.name.lower(), visiting.celery)
            visiting = None
            if "CELERY_BROKER_URL" in celery_env:  # a worker runs the task: done when its
                # event is in; stopped before, it would leave the task queued in Redis
                _progress(f"waiting for the Celery worker's {TASK_EVENT!r} event")
                _wait_for_event(sink, TASK_EVENT)
        except (RuntimeError, OSError) as error:
            servers.close()
            print(f"  FAILED: {error}")
            if visiting is not None:
                print(f"\n  what the {visiting.name} server printed:\n"
                      f"{logs.get(visiting.name, '').rstrip()}")
            return 1
        _progress("stopping the servers; each flushes its events as it exits")
        servers.close()
        events = sink.events()
        failed = sum(not _report(shop, events) for shop in shops)
        if failed and logs.get(WORKER):
            print(f"\n  what the Celery worker printed:\n{logs[WORKER].rstrip()}")
        print(f"\n  done in {time.perf_counter() - started:.1f} s")
        if failed:
            print(f"  FAILED: {failed} of {len(shops)} shops are missing events or their flag")
            return 1
        print(f"  every expected event arrived from all {len(shops)} shops")
        if keep_open:
            print(f"\n  browse them in the viewer: {sink.url}/ (Ctrl-C to stop)")
            _wait_for_interrupt()
        else:
            again = [*_this_command(), "demo", "--keep-open"]
            if examples is not None:
                again += ["--examples", _shown_path(folder)]
            print(f"  to browse them in the viewer: {shlex.join(again)}")
    return 0


def _this_command() -> list[str]:
    """How to run ``posthog-integrations`` again from the working directory.

    The console script's name when PATH finds this one; else its path (as when the venv is
    not activated); else this interpreter with ``-m``.
    """
    name = "posthog-integrations"
    script = Path(sys.executable).parent / (name + (".exe" if os.name == "nt" else ""))
    if not script.is_file():
        return [_shown_path(Path(sys.executable)), "-m", "posthog_integrations"]
    found = shutil.which(name)
    if found is not None and os.path.samefile(found, script):
        return [name]
    return [_shown_path(script)]


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    # A bare name would be looked up on PATH, not in the working directory.
    return str(relative) if len(relative.parts) > 1 else os.path.join(os.curdir, relative)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


@contextmanager
def _served(shop: Shop, examples: Path, endpoint: str, logs: dict[str, str],
            extra_env: dict[str, str]) -> Iterator[str]:
    """Serve ``shop`` with its server on a free port until the block ends; yield its URL.
    What the server printed is left in ``logs``."""
    port = free_port()
    env = {**_environment(shop, examples, endpoint), **extra_env}
    _progress(f"{shop.name}: starting {shop.server} on port {port}")
    process = subprocess.Popen(shop.argv(port), cwd=examples / shop.folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        wait_until_listening(process, port, shop.name)
        yield f"http://127.0.0.1:{port}"
    finally:
        logs[shop.name] = stop(process)


def _environment(shop: Shop, examples: Path, endpoint: str) -> dict[str, str]:
    """What a process of ``shop`` runs with: sending to ``endpoint``, importing the shop."""
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith("POSTHOG_")  # e.g. POSTHOG_DISABLED from the shell
                 and not name.startswith("CELERY_")}  # the demo's own broker, or eager mode
    return {**inherited, **dict(shop.env), "POSTHOG_HOST": endpoint,
            "POSTHOG_API_KEY": DEMO_KEY,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(examples / shop.folder),
                                                        os.environ.get("PYTHONPATH")]))}


WORKER = "Celery worker"  # its entry in the logs


@contextmanager
def _celery_worker(examples: Path, endpoint: str,
                   logs: dict[str, str]) -> Iterator[dict[str, str]]:
    """A Redis and a prefork worker for the Celery shop's tasks until the block ends; yield
    what the shop's server needs in its environment to reach them (or, without
    ``redis-server``, to run its tasks eagerly). What the worker printed is left in ``logs``."""
    shop = next(shop for shop in SHOPS if shop.celery)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("  redis-server is not on PATH: the Celery task runs eagerly, in the request "
              "(CELERY_TASK_ALWAYS_EAGER=1)")
        yield {"CELERY_TASK_ALWAYS_EAGER": "1"}
        return
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    _progress(f"Celery: starting redis-server on port {port} and a prefork worker for the "
              f"{shop.name} shop")
    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until_listening(redis, port, "Redis")
        env = {**_environment(shop, examples, endpoint), "CELERY_BROKER_URL": broker}
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "shop", "worker", "-P", "prefork",
             "--concurrency", "1", "--loglevel", "warning", "--without-mingle",
             "--without-gossip", "--without-heartbeat"],
            cwd=examples / shop.folder, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            yield {"CELERY_BROKER_URL": broker}
        finally:
            logs[WORKER] = stop(worker)
    finally:
        stop(redis)


def _wait_for_event(sink: LocalSink, name: str) -> None:
    deadline = time.monotonic() + TASK_TIMEOUT
    while not sink.events(event=name):
        if time.monotonic() > deadline:
            return  # the report says what is missing, and shows what the worker printed
        time.sleep(0.05)


def _visit(base_url: str, name: str, order: bool = False) -> None:
    """One visitor, as posthog-js would report them to the backend: browse, sign up, buy, fail.
    With ``order``, they place an order after adding to the cart."""
    anonymous = {"X-POSTHOG-DISTINCT-ID": f"anonymous-{name}",
                 "X-POSTHOG-SESSION-ID": f"session-{name}"}
    signed_up = {**anonymous, "X-POSTHOG-DISTINCT-ID": f"user-{name}-fan"}
    _request(base_url + "/", anonymous)
    _request(base_url + "/signup", anonymous, form={"username": f"{name}-fan", "plan": "pro"})
    _request(base_url + "/cart/42", signed_up, form={})
    if order:
        _request(base_url + "/orders", signed_up, form={"item_id": "42"})
    _request(base_url + "/checkout", signed_up, expected_status=500)
    _request(base_url + "/report", signed_up)


def _request(url: str, headers: dict[str, str], form: dict[str, str] | None = None,
             expected_status: int = 200) -> None:
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != expected_status:
        raise RuntimeError(f"{url} answered {status}, expected {expected_status}")


def _report(shop: Shop, events: list[dict[str, Any]]) -> bool:
    """Print what arrived from ``shop``; whether every expected event is there."""
    session = f"session-{shop.name.lower()}"
    arrived = [e for e in events if e.get("properties", {}).get("$session_id") == session]
    # Arrival order is not the visit's order: a threaded server may capture one request's page
    # view after the next request's events. Show them in the visit's order instead.
    expected = shop.expected
    arrived.sort(key=lambda e: (_visit_position(e["event"], expected),
                                str(e.get("timestamp", ""))))
    print(f"\n  {shop.name} ({shop.server}): {len(arrived)} events")
    print(f"    {'event':<24} {'distinct id':<22} {'session':<18} {'route':<20} detail")
    for event in arrived:
        properties = event["properties"]
        print(f"    {event['event']:<24} {event['distinct_id']:<22} {session:<18} "
              f"{properties.get('$route', '-'):<20} {_detail(event)}".rstrip())
    missing = [name for name in expected if name not in {e["event"] for e in arrived}]
    if missing:
        print(f"    MISSING: {', '.join(missing)}")
    strangers = _tasks_of_someone_else(arrived)
    if strangers:
        print(f"    MISSING: the visitor's distinct id on {TASK_EVENT} (it has "
              f"{', '.join(strangers)})")
    items_added = [e for e in arrived if e["event"] == "item added"]
    flag_missing = bool(items_added) and not any(
        FLAG_PROPERTY in e["properties"] for e in items_added)
    if flag_missing:
        print(f"    MISSING: {FLAG_PROPERTY} on item added (the flag read in that request)")
    return not missing and not flag_missing and not strangers


def _tasks_of_someone_else(events: list[dict[str, Any]]) -> list[str]:
    """The distinct ids of task events that are not the distinct id of the order they confirm."""
    placed_by = {e["properties"].get("order_id"): e["distinct_id"] for e in events
                 if e["event"] == "order placed"}
    return [str(e["distinct_id"]) for e in events if e["event"] == TASK_EVENT
            and e["distinct_id"] != placed_by.get(e["properties"].get("order_id"))]


def _visit_position(name: str, expected: tuple[str, ...]) -> int:
    return expected.index(name) if name in expected else len(expected)


def _detail(event: dict[str, Any]) -> str:
    properties = event["properties"]
    if event["event"] == "$exception":
        errors = properties.get("$exception_list") or [{}]
        chain = " <- ".join(str(error.get("type")) for error in errors)
        handled = errors[0].get("mechanism", {}).get("handled")
        return f"{chain}{' (unhandled)' if handled is False else ''}"
    if event["event"] == "$pageview":
        return f"{properties.get('$request_duration_ms', 0):.1f} ms"
    if event["event"] == "$feature_flag_called":
        value = _flag(properties.get("$feature_flag_response"))
        return f"{properties.get('$feature_flag')}={value}"
    if "celery_task_name" in properties:  # the task's own tags, shown as where it ran
        own = [f"{key}={value}" for key, value in properties.items()
               if not key.startswith(("$", "celery_"))]
        return " ".join([*own, f"(task {properties['celery_task_name']})"])
    own = [f"{key}={value}" for key, value in properties.items() if not key.startswith("$")]
    # The flags read earlier in the event's request, which ride on it as $feature/<key>.
    flags = [f"{key[len('$feature/'):]}={_flag(value)}" for key, value in properties.items()
             if key.startswith("$feature/")]
    return " ".join(own + flags)


def _flag(value: Any) -> str:
    """A flag value as the flags file spells it: a variant name, true or false."""
    return value if isinstance(value, str) else json.dumps(value)


def _wait_for_interrupt() -> None:
    """Wait for Ctrl-C, the expected end of ``--keep-open`` (other signals still stop the demo)."""
    try:
        while True:
            time.sleep(3600)
    except Stopped:
        raise
    except KeyboardInterrupt:
        print()
