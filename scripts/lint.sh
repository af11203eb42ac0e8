#!/bin/bash
# Static checks: ruff (style, imports, likely bugs) and mypy (types), configured in
# pyproject.toml. scripts/test.sh runs this before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check deploy tasks tasks.py tests bench/*  # the benchmarks are scripts without .py
.venv/bin/mypy
