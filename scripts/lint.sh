#!/bin/bash
# Static checks: ruff (style, imports, likely bugs) and mypy (types), configured in
# pyproject.toml, and the documentation's build (mkdocs.yml: docs/, the tasks reference
# generated from the tasks' help; --strict fails on a broken link or anchor). Offline, a
# few seconds. scripts/test.sh runs this before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check deploy tasks tasks.py tests bench/* docs/hooks  # the benchmarks are scripts without .py
.venv/bin/mypy
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
