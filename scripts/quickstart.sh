#!/bin/bash
# From a fresh Debian 12 machine (root) to the example stack deployed and served
# through nginx: test bed (engine, Compose v2, registry, images), .venv, an env file
# with fresh secrets, then `inv deploy --version ...`. Safe to run again: each run
# deploys the next patch version with zero downtime. Installs only what the deploy
# needs; scripts/test.sh adds the tools of the tests. Ends with a table of each step's
# time and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
INV=.venv/bin/inv
TIMES=()

# Run a step, note its time in seconds.
step() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name" >&2
    "$@"
    TIMES+=("$(printf '%-34s %4d s' "$name" $((SECONDS - start)))")
}

first_deploy() {
    if "$INV" releases | grep -q success; then
        "$INV" deploy --bump patch
    else
        "$INV" deploy --version "${VERSION:-1.0.0}"
    fi
}

env_file() {
    . scripts/testbed/lib.sh
    [ -f .env ] || "$INV" init --overrides "$TESTBED_IMAGES_ENV"
}

step "test bed (engine, registry, images)" bash scripts/testbed/setup.sh
step "Python environment (.venv)" bash scripts/venv.sh --no-test
step "Node.js tools (pnpm, workspace)" bash scripts/node.sh
step "env file (.env)" env_file
step "inv check" "$INV" check
step "inv deploy (test, build, push, up)" first_deploy
step "inv db.seed" "$INV" db.seed
step "inv health" "$INV" health
"$INV" status

port=$(sed -n 's/^HTTP_PORT=//p' .env | tail -n1)
cat <<SUMMARY

Time per step
$(printf '  %s\n' "${TIMES[@]}")
  $(printf '%-34s %4d s' total "$SECONDS")

The example stack runs: http://127.0.0.1:${port:-8080}/ (the API under /api/)
  nginx in front of web (Next.js) and backend (NestJS), PostgreSQL and Redis, as the
  Compose project of the development stage (.env); images in the registry on
  127.0.0.1:5000. Running this again deploys the next patch version, with no downtime.

Next:
  .venv/bin/inv scale --backend 3      # three backend replicas behind nginx
  .venv/bin/inv deploy --bump patch    # ship the next version (inv releases lists them)
  bash scripts/test.sh                 # the whole test suite (installs the test tools)
SUMMARY
