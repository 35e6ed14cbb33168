#!/usr/bin/env bash
# Quick start, first command: install into ./.venv and run the demo against a local endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --disable-pip-version-check -q -e '.[all]'
exec .venv/bin/posthog-integrations demo "$@"
