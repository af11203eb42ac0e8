#!/bin/bash
# The example workspace's tools on this machine: Node.js (Debian's, if none is here), the
# pnpm that examples/package.json pins, and the workspace's dependencies from its
# lockfile, so that `pnpm --dir examples test` (deploy.test_command) runs. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[node] $*" >&2; }
need_root() {
    [ "$(id -u)" = 0 ] || { log "error: $1 is missing"; log "  fix: as root, once: $2"; exit 1; }
}

if ! command -v node >/dev/null; then
    need_root "Node.js" "apt-get install -y nodejs npm"
    log "installing Node.js (Debian)"
    # Waits for another apt-get (the quick start runs this beside the test bed's setup).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 nodejs npm >/dev/null
fi
want=$(node -p 'require("./examples/package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$want" ]; then
    log "installing pnpm $want"
    # npm's global folder may need root (Debian's) or not (a CI runner's own Node.js).
    npm install --global --no-audit --no-fund --loglevel=error "pnpm@$want" >/dev/null \
        || { log "error: npm could not install pnpm $want"; log "  fix: as root, once: npm install --global pnpm@$want"; exit 1; }
fi
log "installing the workspace's dependencies (examples/pnpm-lock.yaml)"
pnpm --dir examples install --frozen-lockfile --reporter=silent
