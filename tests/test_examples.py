"""The example projects' own test suites pass, each run in its own process as its README says
(three apps named ``shop`` and a Django settings module cannot share this process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_projects"


@pytest.mark.parametrize(("folder", "tests"), [
    ("django_app", 6),
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
