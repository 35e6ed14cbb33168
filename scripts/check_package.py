"""Check the package as users get it: build the sdist and the wheel, check their metadata as the
package index will (``twine check --strict``), install the wheel into a fresh virtualenv per
extra, import what each extra promises, check that no extra upgrades a framework the user
already has at the oldest version supported, and run the demo against the installed wheel.

Run from a clone with the ``release`` extra installed (``pip install -e '.[release]'``):
``python scripts/check_package.py`` (CI does). Exit status 0 when all passed.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What each extra must make importable, beyond the core.
IMPORTS = {
    "": ["posthog_integrations", "posthog_integrations.asgi", "posthog_integrations.wsgi",
         "posthog_integrations.testing"],  # its pytest plugin is loaded by pytest only
    "django": ["posthog_integrations.django", "posthog_integrations.django.middleware"],
    "flask": ["posthog_integrations.flask"],
    "sink": ["posthog_integrations.sink"],
    "redis": ["redis", "posthog_integrations.feature_flags.local.shared"],
    "celery": ["celery", "posthog_integrations.celery"],
    "all": ["posthog_integrations.django", "posthog_integrations.flask",
            "posthog_integrations.sink", "posthog_integrations.demo",
            "posthog_integrations.celery"],
}
IN_THE_WHEEL = ("posthog_integrations/py.typed", "posthog_integrations/sink/viewer.html")
PROJECT_URLS = {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
NOT_IN_THE_WHEEL = ("tests/", "bench/", "example_projects/")
IN_THE_SDIST = ("README.md", "LICENSE", "CHANGELOG.md", "setup.cfg", "pyproject.toml")
# A project already on the oldest framework release supported, and the extra added to it: the
# framework must stay where it was (pins first, then the extra; the distribution, the version
# prefix it must keep).
KEPT_FRAMEWORKS = (
    (["django==4.2.*"], "django", "django", "4.2."),
    (["flask==2.3.*", "werkzeug==2.3.*"], "flask", "flask", "2.3."),
    (["flask==2.3.*", "werkzeug==2.3.*"], "sink", "werkzeug", "2.3."),
)


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="posthog-package-") as scratch:
        work = Path(scratch)
        wheel, sdist = _build(work)
        _check_wheel_contents(wheel)
        _check_sdist_contents(sdist)
        _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])
        _check_metadata(wheel)
        for pins, extra, distribution, kept in KEPT_FRAMEWORKS:
            _check_framework_kept(work, wheel, pins, extra, distribution, kept)
        for extra in IMPORTS:
            python = _fresh_venv(work / f"venv-{extra or 'core'}")
            requirement = f"{wheel}[{extra}]" if extra else str(wheel)
            _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  requirement])
            _check_imports(python, extra, work)
            if extra == "":
                _check_sink_needs_its_extra(python, work)
                _check_cache_needs_its_extra(python, work, present=False)
            if extra == "redis":
                _check_cache_needs_its_extra(python, work, present=True)
            if extra == "all":
                _run([str(python), "-m", "posthog_integrations", "demo",
                      "--examples", str(ROOT / "example_projects")], cwd=work)
    print(f"package checks passed in {time.perf_counter() - started:.0f} s")
    return 0


def _run(command: list[str], cwd: Path | None = None) -> str:
    """Run ``command`` (outside the clone, so the installed package is what gets imported)."""
    print("+", " ".join(command).splitlines()[0], flush=True)
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _build(work: Path) -> tuple[Path, Path]:
    _run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(ROOT)], cwd=work)
    [wheel] = (work / "dist").glob("*.whl")
    [sdist] = (work / "dist").glob("*.tar.gz")
    return wheel, sdist


def _fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=True)
    return path / "bin" / "python"


def _check_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in IN_THE_WHEEL if name not in names]
    stray = [name for name in names if name.startswith(NOT_IN_THE_WHEEL)]
    entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
    points = zipfile.ZipFile(wheel).read(entry_points).decode() if entry_points else ""
    if missing or stray or "pytest11" not in points or "posthog-integrations" not in points:
        raise SystemExit(f"{wheel.name}: missing {missing}, stray {stray[:5]}, "
                         f"entry points:\n{points}")
    print(f"{wheel.name}: {len(names)} files, py.typed, the viewer and both entry points")


def _check_metadata(wheel: Path) -> None:
    """What twine does not check and the package index refuses or shows: classifiers it knows,
    the project's links, the license file."""
    from trove_classifiers import classifiers as known

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    unknown = [c for c in metadata.get_all("Classifier", []) if c not in known]
    links = {link.split(",")[0] for link in metadata.get_all("Project-URL", [])}
    missing = sorted(PROJECT_URLS - links)
    problems = [f"unknown classifiers {unknown}" if unknown else "",
                f"missing project URLs {missing}" if missing else "",
                "" if metadata.get("License-File") == "LICENSE" else "no License-File: LICENSE"]
    if any(problems):
        raise SystemExit(f"{wheel.name} metadata: {'; '.join(p for p in problems if p)}")
    print(f"{wheel.name}: {len(metadata.get_all('Classifier', []))} known classifiers, "
          f"{len(links)} project URLs, the license file")


def _check_sdist_contents(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [name for name in IN_THE_SDIST if name not in names]
    if missing:
        raise SystemExit(f"{sdist.name}: missing {missing}")
    print(f"{sdist.name}: {len(names)} files")


def _check_imports(python: Path, extra: str, work: Path) -> None:
    modules = sorted({*IMPORTS[""], *IMPORTS[extra]})
    code = ("import importlib\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "from posthog_integrations import __file__ as location\n"
            "assert 'site-packages' in location, location\n")
    _run([str(python), "-c", code], cwd=work)
    print(f"[{extra or 'core'}] imports {len(modules)} modules from the installed wheel")


def _check_framework_kept(work: Path, wheel: Path, pins: list[str], extra: str,
                          distribution: str, kept: str) -> None:
    """Installing ``wheel[extra]`` into a project pinned by ``pins`` leaves ``distribution`` at
    the version it had (one starting with ``kept``)."""
    python = _fresh_venv(work / f"venv-kept-{extra}-{distribution}")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, *pins])
    _run([*pip, f"{wheel}[{extra}]"])
    code = f"from importlib.metadata import version; print(version({distribution!r}))"
    found = _run([str(python), "-c", code], cwd=work).strip()
    if not found.startswith(kept):
        raise SystemExit(f"[{extra}] upgraded {distribution} from {kept}x to {found}")
    print(f"[{extra}] keeps {distribution} {found} of a project pinned to {' '.join(pins)}")


def _check_sink_needs_its_extra(python: Path, work: Path) -> None:
    """Without the sink extra, the command says what to install instead of failing."""
    result = subprocess.run([str(python), "-m", "posthog_integrations", "sink"], cwd=work,
                            capture_output=True, text=True, check=False)
    if result.returncode != 2 or "posthog-integrations[sink]" not in result.stderr:
        raise SystemExit(f"sink without werkzeug: {result.returncode} {result.stderr}")


def _check_cache_needs_its_extra(python: Path, work: Path, *, present: bool) -> None:
    """A client given ``flag_definitions_cache`` is built with the redis extra, and without it
    fails at construction with an error that names the extra."""
    code = ("from posthog_integrations import Client, ConfigurationError\n"
            "try:\n"
            "    Client('phc_check', secret_key='phx_check', send=False,\n"
            "           flag_definitions_cache='redis://127.0.0.1:6379/0').shutdown()\n"
            "except ConfigurationError as error:\n"
            "    print(error)\n"
            "else:\n"
            "    print('built')\n")
    said = _run([str(python), "-c", code], cwd=work).strip()
    expected = "built" if present else "posthog-integrations[redis]"
    if expected not in said:
        raise SystemExit(f"flag_definitions_cache {'with' if present else 'without'} the redis "
                         f"extra: {said}")
    print(f"flag_definitions_cache {'works with' if present else 'names'} the redis extra")


if __name__ == "__main__":
    sys.exit(main())
