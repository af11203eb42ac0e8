#!/bin/bash
# Create .venv with the project and its test dependencies (idempotent).
# --no-test: the project alone (what the deploy tasks need; the quick start).
set -euo pipefail
cd "$(dirname "$0")/.."
target=".[test]"
[ "${1:-}" != --no-test ] || target="."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
