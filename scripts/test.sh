#!/usr/bin/env bash
# Quick start, second command: install into ./.venv with the test extra and run the tests.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/core -k retry`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
