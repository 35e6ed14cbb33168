"""The example projects' own test suites pass, each run in its own process as its README says
(three apps named ``shop`` and a Django settings module cannot share this process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_projects"


@pytest.mark.parametrize(("folder", "tests"), [
    ("django_app", 7),  # with the order confirmation run eagerly
    ("flask_app", 6),
    ("starlette_app", 12),  # the Starlette shop and its FastAPI twin
])
def test_the_example_projects_tests_pass(folder: str, tests: int) -> None:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("POSTHOG_") and name != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=EXAMPLES / folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout


# Run in the project's own process: its settings module cannot share this one.
SYSTEM_CHECKS = """
import json, django
django.setup()
from django.core.checks import run_checks
print(json.dumps([[m.id, m.msg] for m in run_checks(include_deployment_checks=False)]))
"""


def django_projects() -> list[Path]:
    return sorted(manage.parent for manage in EXAMPLES.glob("*/manage.py"))


def settings_module(project: Path) -> str:
    found = re.search(r"DJANGO_SETTINGS_MODULE['\"],\s*['\"]([\w.]+)['\"]",
                      (project / "manage.py").read_text(encoding="utf-8"))
    assert found, f"{project}/manage.py names no settings module"
    return found.group(1)


def test_every_django_example_project_is_found() -> None:
    assert [project.name for project in django_projects()] == ["django_app"]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="Django 5.2 needs Python 3.10 or newer")
@pytest.mark.parametrize("project", django_projects(), ids=lambda project: project.name)
def test_django_example_settings_pass_the_packages_own_checks(project: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("POSTHOG_")}
    env["DJANGO_SETTINGS_MODULE"] = settings_module(project)
    result = subprocess.run([sys.executable, "-c", SYSTEM_CHECKS], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout.splitlines()[-1])
    ours = [message for message in messages if message[0].startswith("posthog_integrations.")]
    assert ours == []
