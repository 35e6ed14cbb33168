"""Every code block of the README runs, or is checked, as a user would use it.

Python blocks run section by section in a fresh interpreter, against a real local capture
endpoint: ``phc_...`` becomes a fake but well-formed key, and PostHog's hosts the endpoint's
address. The Django blocks build a project with ``django-admin startproject``; the pytest
examples run with pytest in each example shop; shell blocks name only commands, options and
extras that exist. A block the test cannot classify fails it: mark it just above its fence
with ``<!-- readme-test: skip (reason) -->`` or one of the kinds in ``MARKED_KINDS``.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from posthog_integrations.sink import LocalSink
from posthog_integrations.sink.flags import parse_flags

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "example_projects"
FAKE_KEY = "phc_readme0test0key0not0real"
POSTHOG_HOSTS = ("https://eu.i.posthog.com", "https://us.i.posthog.com")
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
MARKED_KINDS = ("skip", "conftest", "django-settings", "django-view", "flags-file")
FRAMEWORKS = ("django", "flask", "starlette")
NEEDS_DJANGO = pytest.mark.skipif(sys.version_info < (3, 10),
                                  reason="Django 5.2 needs Python 3.10 or newer")


@dataclass(frozen=True)
class Block:
    line: int
    section: str
    language: str
    code: str
    marker: str | None

    @property
    def kind(self) -> str | None:
        """What the block is, from its marker or else its language; None when unknown."""
        if self.marker is not None:
            kind = self.marker.split()[0] if self.marker else ""
            if kind == "skip":
                return "skip" if re.fullmatch(r"skip \(.+\)", self.marker) else None
            if kind == "conftest":
                return "conftest" if self.marker.split()[1:] in ([f] for f in FRAMEWORKS) else None
            return kind if kind in MARKED_KINDS else None
        if self.language == "python":
            return "pytest" if re.search(r"^def test_", self.code, re.MULTILINE) else "python"
        if self.language in ("bash", "sh", "shell"):
            return "shell"
        return None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}, {self.language or 'no language'})"


@cache
def readme_blocks() -> tuple[Block, ...]:
    blocks: list[Block] = []
    section = ""
    lines = README.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith("#") and not line.startswith(" "):
            section = stripped.lstrip("#").strip()
        if stripped.startswith("```"):
            language = stripped[3:].strip()
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            code = textwrap.dedent("\n".join(lines[index + 1:end])) + "\n"
            above = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marked = MARKER.match(above)
            blocks.append(Block(index + 1, section, language, code,
                                marked.group(1) if marked else None))
            index = end
        index += 1
    return tuple(blocks)


def blocks_of(kind: str) -> list[Block]:
    return [block for block in readme_blocks() if block.kind == kind]


def test_every_block_is_run_checked_or_skipped_with_a_reason() -> None:
    unknown = [str(block) for block in readme_blocks() if block.kind is None]
    assert unknown == [], (
        "blocks this test cannot classify: mark each just above its fence, e.g. "
        "<!-- readme-test: skip (why it cannot run) -->")
    assert len(readme_blocks()) > 20  # the parser found the README's blocks


def test_the_quick_start_is_exactly_two_commands() -> None:
    [first, *_] = [block for block in readme_blocks() if block.section == "Quick start"]
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert commands == ["./scripts/demo.sh", "./scripts/test.sh"]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_leads_with_which_integration_and_its_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^#{2,3} (.+)$", text, re.MULTILINE)
    assert headings[:2] == ["Which integration do I need?", "Quick start"]
    anchors = {slug(heading) for heading in headings}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links - anchors == set()
    chooser = text[text.index("## Which integration"):text.index("## Quick start")]
    for app in ("Django", "Flask", "FastAPI, Starlette", "any other ASGI app",
                "any other WSGI app", "scripts, workers"):
        assert f"| {app}" in chooser


# --- Python blocks, run section by section ----------------------------------------------

@dataclass
class Section:
    """How a section's blocks run: ``before[i]`` runs before block i and ``after[i]`` after
    it, all in one namespace; then ``expect`` lists events the endpoint must have received
    (``event``, ``distinct_id`` and property values)."""

    before: list[str]
    after: list[str]
    expect: list[dict[str, Any]]
    flags: dict[str, Any] | None = None


IDENTIFIED = """
import posthog_integrations as posthog
request_context = posthog.new_context()
request_context.__enter__()
posthog.identify_context("user-42")
"""

TRACING = {"X-POSTHOG-DISTINCT-ID": "anonymous-7", "X-POSTHOG-SESSION-ID": "session-7"}

SECTIONS: dict[str, Section] = {
    "Use it": Section(
        before=["", ""], after=["", ""],
        expect=[{"event": "order processed", "distinct_id": "user-42", "total": 99.5},
                {"event": "$set", "distinct_id": "user-42"},
                {"event": "$groupidentify", "$group_type": "company", "$group_key": "acme"},
                {"event": "signed up", "distinct_id": "user-42"}]),
    "Contexts": Section(
        before=[""], after=["handle_job('job-1'); assert list(export_rows([1, 2])) == [1, 2]"],
        expect=[{"event": "checkout started", "distinct_id": "user-42",
                 "$session_id": "session-abc", "plan": "pro"},
                {"event": "override", "distinct_id": "x", "plan": "pro"}]),
    "Capture v1": Section(
        before=[""], after=[""],
        expect=[{"event": "signed up", "distinct_id": "user-1"}]),
    "Threads and executors": Section(
        before=[""], after=[""],
        expect=[{"event": "receipt sent", "distinct_id": "user-42", "plan": "pro",
                 "order": "order-1"},
                {"event": "receipt sent", "distinct_id": "user-42", "plan": "pro",
                 "order": "order-2"}]),
    "Celery": Section(
        before=[""], after=["""
app.conf.task_always_eager = True  # no broker here: the task runs in the caller's context
with posthog.new_context():
    posthog.identify_context("user-42")
    posthog.tag("plan", "pro")
    posthog.tag("$current_url", "https://shop.example/orders")
    send_confirmation.delay("order-1")
"""],
        expect=[{"event": "order confirmation sent", "distinct_id": "user-42", "plan": "pro",
                 "order": "order-1", "celery_task_name": "__readme__.send_confirmation",
                 "$current_url": None}]),
    "Exceptions": Section(
        before=["""
import posthog_integrations as posthog
class PaymentError(Exception):
    pass
def charge(order):
    raise PaymentError(f"card declined for {order}")
order = "order-1"
"""], after=[""],
        expect=[{"event": "$exception", "$exception_message": "card declined for order-1",
                 "$exception_level": "warning",
                 "$exception_fingerprint": "payment-declined"}]),
    "Logging": Section(
        before=["""
class PaymentError(Exception):
    pass
def charge(order):
    raise PaymentError(f"card declined for {order}")
order = "order-1"
"""], after=[""],
        expect=[{"event": "$exception", "$exception_message": "card declined for order-1",
                 "$exception_source": "python.logging", "$exception_level": "error",
                 "$log_message": "charging order-1 failed", "$logger_name": "shop.payments"}]),
    "Exception storms": Section(
        before=["""
class PaymentError(Exception):
    pass
def charge(order):
    raise PaymentError(f"card declined for {order}")
orders = [f"order-{number}" for number in range(100)]
"""], after=["""
client.shutdown()
stats = client.stats()
assert stats.dropped_by_reason["exception_storm"] == 100 - stats.sent, stats
assert 30 <= stats.sent <= 40, stats
"""],
        expect=[{"event": "$exception", "$exception_message": "card declined for order-0"}]),
    "Local variables": Section(
        before=["""
from posthog_integrations.testing import capture_events
recording = capture_events()
events = recording.__enter__()
"""], after=["""
recording.__exit__(None, None, None)
[frame] = [frame for frame in events.one("$exception")["properties"]["$exception_list"][0][
    "stacktrace"]["frames"] if frame["function"] == "charge"]
assert frame["code_variables"] == {
    "order_id": "order-1", "card_token": "$$_posthog_redacted_based_on_masking_rules_$$",
    "amount": 4200}, frame.get("code_variables")
posthog.capture("checked")
"""],
        expect=[{"event": "checked"}]),
    "Trace ids": Section(
        before=["""
import re
import posthog_integrations as posthog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from posthog_integrations.testing import capture_events
trace.set_tracer_provider(TracerProvider())  # the app's own set-up
recording = capture_events()
events = recording.__enter__()
"""], after=["""
recording.__exit__(None, None, None)
properties = events.one("order placed")["properties"]
assert re.fullmatch("[0-9a-f]{32}", properties["$trace_id"]), properties
assert re.fullmatch("[0-9a-f]{16}", properties["$span_id"]), properties
posthog.capture("checked", distinct_id="user-42")
"""],
        expect=[{"event": "checked", "distinct_id": "user-42"}]),
    "One snapshot per request": Section(
        before=[IDENTIFIED], after=["assert flags.is_enabled('new-checkout')"],
        flags={"flags": {"new-checkout": "test"}},
        expect=[{"event": "$feature_flag_called", "distinct_id": "user-42",
                 "$feature_flag": "new-checkout", "$feature_flag_response": "test"}]),
    "Snapshots and the familiar getters": Section(
        before=["import posthog_integrations as posthog"],
        after=["assert (variant, config) == ('b', {'price': 9}), (variant, config)"],
        flags={"flags": {"new-checkout": True, "pricing": "b"},
               "payloads": {"pricing": {"price": 9}}},
        expect=[{"event": "checkout started", "distinct_id": "user-42",
                 "$feature/new-checkout": True, "$feature/pricing": "b"},
                {"event": "$feature_flag_called", "$feature_flag": "pricing"}]),
    "Web apps: ASGI and WSGI": Section(
        before=["", """
def app(environ, start_response):  # a bare WSGI app
    import posthog_integrations
    posthog_integrations.capture("page served")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""],
        after=[f"""
from starlette.testclient import TestClient
with TestClient(app) as test_client:
    assert test_client.post("/cart/42", headers={TRACING!r}).json() == {{"item_id": 42}}
""", f"""
from werkzeug.test import Client as WSGIClient
assert WSGIClient(app).get("/hello", headers={TRACING!r}).status_code == 200
"""],
        expect=[{"event": "item added", "distinct_id": "anonymous-7", "$session_id": "session-7",
                 "$route": "/cart/{item_id}", "$request_path": "/cart/42"},
                {"event": "page served", "distinct_id": "anonymous-7", "$request_path": "/hello"}]),
    "Flask": Section(
        before=[""], after=["""
import posthog_integrations
app = create_app()

@app.route("/items/<int:item_id>")
def item(item_id):
    posthog_integrations.capture("item viewed")
    return "ok"

assert app.test_client().get("/items/3").status_code == 200
app.extensions["posthog"].client.flush()
"""],
        expect=[{"event": "item viewed", "$route": "/items/<int:item_id>",
                 "$request_path": "/items/3"}]),
}

RUNNER = """
import ast, asyncio, json, sys
import posthog_integrations
from posthog_integrations import Client

namespace = {"__name__": "__readme__"}
for name, source in json.load(sys.stdin):
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
for value in list(namespace.values()):
    if isinstance(value, Client):
        value.flush(10)
posthog_integrations.flush(10)
print("ran", len(namespace))
"""


def for_the_local_endpoint(code: str, sink_url: str) -> str:
    for host in POSTHOG_HOSTS:
        code = code.replace(host, sink_url)
    return code.replace('"phc_..."', repr(FAKE_KEY))


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("POSTHOG_") and name != "DJANGO_SETTINGS_MODULE"}
    env.update(extra)
    return env


def run_python(sources: list[tuple[str, str]], sink: LocalSink, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], input=json.dumps(sources), cwd=cwd,
        env=clean_env(POSTHOG_API_KEY=FAKE_KEY, POSTHOG_HOST=sink.url),
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_received(sink: LocalSink, expected: list[dict[str, Any]]) -> None:
    sink.wait_for_events(len(expected), timeout=10)
    events = sink.events()
    for wanted in expected:
        def matches(event: dict[str, Any], wanted: dict[str, Any] = wanted) -> bool:
            found = {"event": event.get("event"), "distinct_id": event.get("distinct_id"),
                     **event.get("properties", {})}
            return all(found.get(key) == value for key, value in wanted.items())
        assert any(matches(event) for event in events), (
            f"no event like {wanted} among {[(e['event'], e['distinct_id']) for e in events]}")


def python_sections() -> list[str]:
    return list(dict.fromkeys(block.section for block in blocks_of("python")))


def test_every_python_section_says_how_it_runs() -> None:
    assert set(python_sections()) == set(SECTIONS), "add or remove an entry of SECTIONS"


@pytest.mark.parametrize("name", list(SECTIONS))
def test_python_blocks_run_and_send_what_they_say(name: str, tmp_path: Path) -> None:
    spec = SECTIONS[name]
    blocks = [block for block in blocks_of("python") if block.section == name]
    assert len(blocks) == len(spec.before) == len(spec.after), (
        f"{name}: {len(blocks)} blocks; give each a before and after step in SECTIONS")
    with LocalSink(flags=spec.flags) as sink:
        sources: list[tuple[str, str]] = []
        for number, (block, before, after) in enumerate(zip(blocks, spec.before, spec.after)):
            sources += [(f"<before {number}>", before),
                        (str(block), for_the_local_endpoint(block.code, sink.url)),
                        (f"<after {number}>", after)]
        run_python(sources, sink, tmp_path)
        assert_received(sink, spec.expect)


# --- Django: the settings snippet in a project made by startproject ------------------------

DJANGO_DRIVER = """
import json, django
django.setup()
from django.core.checks import run_checks
from django.test import Client
from django.test.utils import setup_test_environment
import posthog_integrations

setup_test_environment()
checks = [[message.id, message.msg] for message in run_checks()]
status = Client(headers={"X-POSTHOG-DISTINCT-ID": "anonymous-7"}).get("/report/").status_code
posthog_integrations.flush(10)
print(json.dumps({"checks": checks, "status": status}))
"""


@NEEDS_DJANGO
def test_the_django_snippets_in_a_startproject_project(tmp_path: Path) -> None:
    [settings] = blocks_of("django-settings")
    [view] = blocks_of("django-view")
    django_admin = [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)]
    subprocess.run(django_admin, check=True, capture_output=True, timeout=120)
    package = tmp_path / "mysite"
    with LocalSink() as sink:
        with (package / "settings.py").open("a", encoding="utf-8") as file:
            file.write("\n" + for_the_local_endpoint(settings.code, sink.url))
        (package / "views.py").write_text(
            "import posthog_integrations\nfrom django.http import HttpResponse\n\n\n"
            "def report(request):\n" + textwrap.indent(view.code, "    ")
            + "    return HttpResponse('ok')\n", encoding="utf-8")
        (package / "urls.py").write_text(
            "from django.urls import path\n\nfrom . import views\n\n"
            "urlpatterns = [path('report/', views.report)]\n", encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-c", DJANGO_DRIVER], cwd=tmp_path,
            env=clean_env(DJANGO_SETTINGS_MODULE="mysite.settings"),
            capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        outcome = json.loads(result.stdout.splitlines()[-1])
        ours = [check for check in outcome["checks"]
                if check[0].startswith("posthog_integrations.")]
        assert ours == []
        assert outcome["status"] == 200
        assert_received(sink, [{"event": "report exported", "distinct_id": "anonymous-7",
                                "rows": 120, "$route": "/report/"}])


# --- The pytest examples, in each example shop ---------------------------------------------

def pytest_examples() -> str:
    return "\n\n".join(block.code for block in blocks_of("pytest"))


def conftest_for(framework: str) -> str:
    [block] = [block for block in blocks_of("conftest") if block.marker == f"conftest {framework}"]
    return block.code


@pytest.mark.parametrize("framework", [
    pytest.param("django", marks=NEEDS_DJANGO),
    pytest.param("django+pytest-django", marks=[NEEDS_DJANGO, pytest.mark.skipif(
        importlib.util.find_spec("pytest_django") is None,
        reason="pytest-django is not installed")]),
    "flask",
    "starlette",
])
def test_the_pytest_examples_pass_in_each_example_shop(framework: str, tmp_path: Path) -> None:
    name = framework.split("+")[0]
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLES / f"{name}_app", shop, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", "test_*.py", "*.sqlite3"))
    with (shop / "conftest.py").open("a", encoding="utf-8") as file:
        file.write("\n\n" + conftest_for(name))
    (shop / "test_readme_examples.py").write_text(pytest_examples(), encoding="utf-8")
    plugins = (["-p", "pytest_django", "--ds", "shop.settings"]
               if framework.endswith("pytest-django") else ["-p", "no:django"])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins],
        cwd=shop, env=clean_env(), capture_output=True, text=True, timeout=180, check=False)
    tests = len(re.findall(r"^def test_", pytest_examples(), re.MULTILINE))
    apps = 2 if name == "starlette" else 1  # the Starlette shop and its FastAPI twin
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests * apps} passed" in result.stdout


# --- Data and shell blocks ------------------------------------------------------------------

def test_the_flags_file_example_is_one_the_endpoint_accepts() -> None:
    [block] = blocks_of("flags-file")
    flags = parse_flags(json.loads(block.code))
    assert flags  # a mistake raises ValueError naming it


@cache
def help_text(*command: str) -> str:
    result = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def extras() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return set(config["options.extras_require"])


def options_in(line: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))


def check_command(words: list[str], line: str) -> str | None:
    """Why the command cannot work as written, or None."""
    program, *args = words
    if program.startswith("./scripts/"):
        script = ROOT / program
        if not (script.is_file() and os.access(script, os.X_OK)):
            return f"{program} is not an executable script"
        runs = re.search(r"posthog-integrations (\w+)", script.read_text(encoding="utf-8"))
        known = help_text("posthog_integrations", runs.group(1)) if runs else ""
        missing = {option for option in options_in(line) if option not in known}
        return f"{program} has no {sorted(missing)}" if missing else None
    if program == "posthog-integrations":
        command = ["posthog_integrations", *args[:1]] if args and not args[0].startswith("-") \
            else ["posthog_integrations"]
        missing = options_in(line) - options_in(help_text(*command))
        return f"{' '.join(command)} has no {sorted(missing)}" if missing else None
    if program == "pip" and args[:1] == ["install"]:
        named = set(re.findall(r"\[(\w+)\]", line))
        for requirement in (arg for arg in args[1:] if not arg.startswith("-")):
            target = requirement.split("[")[0]
            if target not in (".", "./posthog-integrations"):
                return f"pip installs {target!r}, not this project"
        return f"no extras {sorted(named - extras())}" if named - extras() else None
    if program == "python" and args[:1] == ["-m"]:
        missing = options_in(line) - options_in(help_text(args[1]))
        return f"python -m {args[1]} has no {sorted(missing)}" if missing else None
    if program == "python" and args and re.fullmatch(r"your_\w+\.py", args[0]):
        return None  # the reader's own program
    if program == "python" and args[:1] == ["manage.py"]:
        commands = ROOT / "posthog_integrations" / "django" / "management" / "commands"
        name = args[1] if len(args) > 1 else ""
        return None if (commands / f"{name}.py").is_file() else f"no management command {name!r}"
    if program == "flask" and "posthog" in args:
        sub = args[args.index("posthog") + 1:][:1]
        return None if sub and sub[0] in flask_posthog_commands() else f"no flask posthog {sub}"
    return f"unknown command {program!r}"


def flask_posthog_commands() -> set[str]:
    """The subcommands of the ``flask posthog`` group the Flask extension adds."""
    from posthog_integrations.flask.extension import _cli_group

    return set(_cli_group().commands)


def shell_commands() -> list[tuple[Block, str, list[str]]]:
    found = []
    for block in blocks_of("shell"):
        for line in block.code.splitlines():
            command_part = line.split(" #")[0]
            for command in command_part.split("&&"):
                words = shlex.split(command)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words.pop(0)  # VARIABLE=value before the command
                if words:
                    found.append((block, line, words))
    return found


def test_shell_blocks_name_commands_options_and_extras_that_exist() -> None:
    problems = [f"{block}: {line!r}: {problem}" for block, line, words in shell_commands()
                if (problem := check_command(words, line)) is not None]
    assert problems == []
    assert len(shell_commands()) >= 8
