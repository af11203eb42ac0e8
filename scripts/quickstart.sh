#!/bin/bash
# From a fresh Debian 12 machine (root) to the example stack served through nginx:
# test bed (engine, Compose v2, registry, images), .venv, an env file with fresh
# secrets, then the tasks a user runs. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/testbed/setup.sh
bash scripts/venv.sh
. scripts/testbed/lib.sh
INV=.venv/bin/inv

if [ ! -f .env ]; then
    "$INV" init --overrides "$TESTBED_IMAGES_ENV"
fi
"$INV" check
"$INV" up --build   # prints the URL the stack is served at
"$INV" exec backend -- node src/migrate.js
"$INV" exec backend -- node src/seed.js
"$INV" health
"$INV" status
echo
echo "Next: .venv/bin/inv --list; .venv/bin/inv scale --backend 3; .venv/bin/inv logs backend --follow"
