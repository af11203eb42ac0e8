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
LOGS=$(mktemp -d)

# Run a step, note its time in seconds.
step() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name" >&2
    "$@"
    TIMES+=("$(printf '%-44s %4d s' "$name" $((SECONDS - start)))")
}

# Start a step in the background, its output in $LOGS/ID.log, its time in $LOGS/ID.time.
background() {
    local id=$1 name=$2
    shift 2
    echo "== $name (in the background)" >&2
    echo "$name" >"$LOGS/$id.name"
    ( start=$SECONDS; "$@" >"$LOGS/$id.log" 2>&1; echo $((SECONDS - start)) >"$LOGS/$id.time" ) &
    echo $! >"$LOGS/$id.pid"
}

# Wait for a background step; on failure show its output and stop.
finish() {
    local id=$1 name
    name=$(cat "$LOGS/$id.name")
    wait "$(cat "$LOGS/$id.pid")" || { cat "$LOGS/$id.log" >&2; echo "quickstart: $name failed (output above)" >&2; exit 1; }
    TIMES+=("$(printf '%-44s %4d s' "$name (beside it)" "$(cat "$LOGS/$id.time")")")
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

# pip and pnpm mostly download: they run while the test bed is set up (an apt-get of
# node.sh, on a machine without Node.js, waits for setup.sh's).
background venv "Python environment (.venv)" bash scripts/venv.sh --no-test
background node "Node.js tools (pnpm, workspace)" bash scripts/node.sh
step "test bed (engine, registry, images)" bash scripts/testbed/setup.sh
finish venv
finish node
step "env file (.env)" env_file
step "inv check" "$INV" check
step "inv deploy (test, build, push, up)" first_deploy
step "inv db.seed" "$INV" db.seed
step "inv health" "$INV" health
"$INV" status
rm -rf "$LOGS"

port=$(sed -n 's/^HTTP_PORT=//p' .env | tail -n1)
cat <<SUMMARY

Time per step
$(printf '  %s\n' "${TIMES[@]}")
  $(printf '%-44s %4d s' "total (wall clock)" "$SECONDS")

The example stack runs: http://127.0.0.1:${port:-8080}/ (the API under /api/)
  nginx in front of web (Next.js) and backend (NestJS), PostgreSQL and Redis, as the
  Compose project of the development stage (.env); images in the registry on
  127.0.0.1:5000. Running this again deploys the next patch version, with no downtime.

Next:
  .venv/bin/inv scale --backend 3      # three backend replicas behind nginx
  .venv/bin/inv deploy --bump patch    # ship the next version (inv releases lists them)
  bash scripts/test.sh                 # the whole test suite (installs the test tools)
SUMMARY
