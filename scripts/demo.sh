#!/usr/bin/env bash
# Quick start, first command: install into the clone's .venv and run the demo against a local
# endpoint. It runs in the current directory, so the commands it prints work from there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -x "$root/.venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$root/.venv"
"$root/.venv/bin/python" -m pip install --disable-pip-version-check -q -e "$root[all]"
exec "$root/.venv/bin/posthog-integrations" demo "$@"
