#!/bin/bash
# Test hosts for the remote tasks: `hosts.sh up` makes three real hosts on this machine,
# `hosts.sh down` removes them. Each host is a network namespace on the bridge
# $TESTBED_BRIDGE with its own mount namespace (its own /srv, /run and /etc/cron.d), sshd, cron and Docker engine
# (TESTBED.md, "Remote hosts"). Roles in the tests: h1 and h2 are app hosts, h3 the db host.
#
# The hosts pull from the registry at the gateway address ($TESTBED_HOST_REGISTRY): a
# second registry process on the same storage as the one on 127.0.0.1. `up` writes
# $TESTBED_HOSTS_ENV: the hosts' addresses, a client key made for this run, a
# known_hosts file with the hosts' real keys, and the stand-in images as hosts name them.
# Needs setup.sh first (engine, registry, stand-in images).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HOSTS=(h1 h2 h3)

host_addr() { echo "$TESTBED_NET.$((10 + ${1#h}))"; }

bridge_up() {
    ip link show "$TESTBED_BRIDGE" >/dev/null 2>&1 || ip link add "$TESTBED_BRIDGE" type bridge
    ip addr replace "$TESTBED_GATEWAY/24" dev "$TESTBED_BRIDGE"
    ip link set "$TESTBED_BRIDGE" up
    # Docker's FORWARD policy is DROP and bridged frames pass iptables (br_netfilter):
    # let the hosts reach each other (app hosts -> db host).
    iptables -C FORWARD -i "$TESTBED_BRIDGE" -o "$TESTBED_BRIDGE" -j ACCEPT 2>/dev/null \
        || iptables -I FORWARD -i "$TESTBED_BRIDGE" -o "$TESTBED_BRIDGE" -j ACCEPT
}

registry_for_hosts() {
    if TESTBED_REGISTRY_ADDR=$TESTBED_HOST_REGISTRY registry_up; then return; fi
    log "serving the registry to the hosts on $TESTBED_HOST_REGISTRY"
    sed "s/^  addr: .*/  addr: $TESTBED_HOST_REGISTRY/" "$TESTBED_STATE/registry.yml" >"$TESTBED_HOSTS_STATE/registry.yml"
    start_daemon registry-hosts /var/log/deploy-testbed-registry-hosts.log docker-registry serve "$TESTBED_HOSTS_STATE/registry.yml"
    TESTBED_REGISTRY_ADDR=$TESTBED_HOST_REGISTRY wait_for "the hosts' registry" 40 registry_up
}

client_key() {
    rm -f "$TESTBED_HOSTS_STATE/client_key" "$TESTBED_HOSTS_STATE/client_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "deploy-testbed-client" -f "$TESTBED_HOSTS_STATE/client_key"
    cp "$TESTBED_HOSTS_STATE/client_key.pub" "$TESTBED_HOSTS_STATE/authorized_keys"
    : >"$TESTBED_HOSTS_STATE/known_hosts"
}

write_host_config() {
    local h=$1 addr=$2 dir=$3
    mkdir -p "$dir/srv" "$dir/data" "$dir/exec"
    [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$dir/ssh_host_ed25519_key"
    cat >"$dir/sshd_config" <<EOF
ListenAddress $addr
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $TESTBED_HOSTS_STATE/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 100
MaxSessions 100
SetEnv DOCKER_HOST=unix:///run/hostdocker/docker.sock
Subsystem sftp internal-sftp
EOF
    mkdir -p "$dir/cron.d"
    : >"$dir/crontab"
    # The host's own /run (its Docker socket at the usual place, so that its cron jobs reach
    # its engine; sshd's and cron's pid files), its own /etc/cron.d, and none of this
    # machine's /etc/crontab jobs; then its dockerd, sshd and cron.
    cat >"$dir/boot.sh" <<EOF
set -e
mount --make-rprivate /
mount --bind $dir/srv /srv
mount -t tmpfs tmpfs /run
mkdir -p /run/hostdocker /run/sshd
mount --bind $dir/cron.d /etc/cron.d
mount --bind $dir/crontab /etc/crontab
dockerd --data-root $dir/data --exec-root $dir/exec -H unix:///run/hostdocker/docker.sock -H unix:///run/docker.sock \\
    --pidfile $dir/docker.pid --insecure-registry $TESTBED_HOST_REGISTRY >$dir/dockerd.log 2>&1 &
/usr/sbin/sshd -D -f $dir/sshd_config -E $dir/sshd.log &
/usr/sbin/cron -f >$dir/cron.log 2>&1 &
wait
EOF
}

host_up() {
    local h=$1 addr dir
    addr=$(host_addr "$h")
    dir="$TESTBED_HOSTS_STATE/$h"
    write_host_config "$h" "$addr" "$dir"
    if ! ip netns list | grep -qw "$h"; then
        ip netns add "$h"
        ip link add "veth-$h" type veth peer name eth0 netns "$h"
        ip link set "veth-$h" master "$TESTBED_BRIDGE" up
        ip -n "$h" addr add "$addr/24" dev eth0
        ip -n "$h" link set eth0 up
        ip -n "$h" link set lo up
        ip -n "$h" route add default via "$TESTBED_GATEWAY"
    fi
    if [ -z "$(ip netns pids "$h")" ]; then
        log "booting host $h ($addr): sshd and dockerd"
        # nsenter, not `ip netns exec` (that remounts /sys and dockerd then fails).
        start_daemon "host-$h" "$dir/boot.log" nsenter --net="/var/run/netns/$h" unshare --mount bash "$dir/boot.sh"
    fi
    printf '%s %s\n' "$addr" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>"$TESTBED_HOSTS_STATE/known_hosts"
}

ssh_host() {
    ssh -i "$TESTBED_HOSTS_STATE/client_key" -o UserKnownHostsFile="$TESTBED_HOSTS_STATE/known_hosts" \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=3 "root@$1" "${@:2}"
}

host_ready() { ssh_host "$1" docker info >/dev/null 2>&1; }

# The stand-in images, pushed so that hosts can pull them; their names as hosts see them.
host_images() {
    local var image
    while IFS='=' read -r var image; do
        case "$var" in POSTGRES_IMAGE|REDIS_IMAGE|NGINX_IMAGE|NODE_IMAGE) ;; *) continue ;; esac
        docker tag "$image" "$TESTBED_REGISTRY_ADDR/$image"
        docker push -q "$TESTBED_REGISTRY_ADDR/$image" >/dev/null
        echo "HOST_$var=$TESTBED_HOST_REGISTRY/$image"
    done <"$TESTBED_IMAGES_ENV"
}

# sshd for the hosts, without starting the machine's own ssh service (its packaging
# would open port 22 on every address): a policy-rc.d of 101 forbids service starts.
# An existing policy-rc.d is the administrator's, and is left as it is.
install_sshd() {
    [ -x /usr/sbin/sshd ] && return
    local policy=/usr/sbin/policy-rc.d ours="" status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        ours=1
    fi
    need_packages openssh-server || status=$?
    [ -z "$ours" ] || rm -f "$policy"
    [ "$status" = 0 ] || die "installing openssh-server failed; install it, then run hosts.sh up again"
}

up() {
    [ "$(id -u)" = 0 ] || die "run as root (it makes network namespaces)"
    [ -f "$TESTBED_IMAGES_ENV" ] || die "run scripts/testbed/setup.sh first"
    install_sshd
    docker info -f '{{.RegistryConfig.IndexConfigs}}' | grep -q "$TESTBED_HOST_REGISTRY" \
        || die "the engine does not trust $TESTBED_HOST_REGISTRY: restart it (teardown.sh, then setup.sh)"
    mkdir -p "$TESTBED_HOSTS_STATE"
    bridge_up
    registry_for_hosts
    client_key
    local addrs=()
    for h in "${HOSTS[@]}"; do
        host_up "$h"
        addrs+=("$(host_addr "$h")")
    done
    for h in "${HOSTS[@]}"; do
        wait_for "host $h" 120 host_ready "$(host_addr "$h")"
        # Engines keep their data between runs (cached images): start without containers.
        ssh_host "$(host_addr "$h")" 'docker rm -f $(docker ps -aq) >/dev/null 2>&1; docker volume prune -af >/dev/null 2>&1; docker network prune -f >/dev/null; rm -rf /srv/*'
    done
    {
        echo "# Written by scripts/testbed/hosts.sh up"
        echo "TESTBED_HOSTS=${HOSTS[*]}"
        echo "TESTBED_HOST_ADDRS=${addrs[*]}"
        echo "TESTBED_GATEWAY=$TESTBED_GATEWAY"
        echo "TESTBED_SSH_KEY=$TESTBED_HOSTS_STATE/client_key"
        echo "TESTBED_KNOWN_HOSTS=$TESTBED_HOSTS_STATE/known_hosts"
        echo "TESTBED_HOST_REGISTRY=$TESTBED_HOST_REGISTRY"
        host_images
    } >"$TESTBED_HOSTS_ENV"
    log "hosts ready: ${HOSTS[*]} (${addrs[*]}); settings in $TESTBED_HOSTS_ENV"
}

host_down() {
    local h=$1 pids
    ip netns list | grep -qw "$h" || return 0
    log "removing host $h"
    # dockerd first, so that it stops its containers; then whatever else runs there.
    pids=$(ip netns pids "$h")
    [ -z "$pids" ] || pkill -TERM -x dockerd --ns "$(echo "$pids" | head -n1)" --nslist net 2>/dev/null || true
    for _ in $(seq 40); do pgrep -x dockerd --ns "$(echo "$pids" | head -n1)" --nslist net >/dev/null 2>&1 || break; sleep 0.5; done
    pids=$(ip netns pids "$h")
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    rm -f "$TESTBED_RUN/host-$h.pid"
    ip netns del "$h"
    ip link del "veth-$h" 2>/dev/null || true
}

down() {
    for h in "${HOSTS[@]}"; do host_down "$h"; done
    local file="$TESTBED_RUN/registry-hosts.pid"
    if [ -f "$file" ]; then
        kill "$(cat "$file")" 2>/dev/null || true
        rm -f "$file"
    fi
    iptables -D FORWARD -i "$TESTBED_BRIDGE" -o "$TESTBED_BRIDGE" -j ACCEPT 2>/dev/null || true
    ip link del "$TESTBED_BRIDGE" 2>/dev/null || true
    rm -f "$TESTBED_HOSTS_ENV"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) die "usage: hosts.sh up|down" ;;
esac
