#!/bin/bash
# Stop what setup.sh started (and only that): the daemons whose pids it recorded.
# Cached images and the registry's data stay in $TESTBED_STATE for the next run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stop_pid() {
    local name=$1 file="$TESTBED_RUN/$1.pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$file"
}

bash "$(dirname "$0")/hosts.sh" down
stop_pid registry
stop_pid dockerd

