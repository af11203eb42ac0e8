#!/bin/bash
# The whole test suite: sets up the offline test bed (engine, Compose v2, registry,
# stand-in images, the tools only the tests use, three SSH test hosts), the Python
# environment, the example workspace's pnpm dependencies, ruff and mypy, then the unit
# and integration tests.
# Extra arguments go to pytest (e.g. -m "not integration" for the unit tests alone).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/testbed/setup.sh
bash scripts/testbed/test-tools.sh
bash scripts/testbed/hosts.sh up
bash scripts/venv.sh
bash scripts/node.sh
bash scripts/lint.sh
# pytest exits 5 when it collects nothing: set -e makes that a failure too.
.venv/bin/python -m pytest "$@"
