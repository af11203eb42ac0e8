#!/bin/bash
# From a fresh Debian 12 machine (root) to the example stack deployed and served
# through nginx: test bed (engine, Compose v2, registry, images), .venv, an env file
# with fresh secrets, then `inv deploy --version ...`. Safe to run again: each run
# deploys the next patch version with zero downtime.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/testbed/setup.sh
bash scripts/venv.sh
bash scripts/node.sh
. scripts/testbed/lib.sh
INV=.venv/bin/inv

if [ ! -f .env ]; then
    "$INV" init --overrides "$TESTBED_IMAGES_ENV"
fi
"$INV" check
if "$INV" releases | grep -q success; then
    "$INV" deploy --bump patch
else
    "$INV" deploy --version "${VERSION:-1.0.0}"
fi
"$INV" db.seed
"$INV" health
"$INV" status
echo
echo "Next: .venv/bin/inv --list; .venv/bin/inv scale --backend 3; .venv/bin/inv logs backend --follow"
