#!/bin/sh
# The proxy container's main process: renders the front's config (rate limits from the
# environment), starts the router nginx and the front nginx (docs/routing.md), and
# watches both masters. If either ends, so does the container, and its
# restart policy brings the pair back (a router that died alone would leave the front
# answering 502 in a container that still looks up). SIGTERM (docker stop) ends both
# gracefully: they finish the requests in flight (so do SIGQUIT, the nginx images' stop
# signal, and SIGINT).
# Both masters run in the foreground ("daemon off"), children of this script: they keep
# its stdout and stderr (the container's log), so /dev/stdout and /dev/stderr still name
# the log after a reload (a daemonized master would reopen them as /dev/null). `-e
# stderr`: nginx logs there from its first line, before its config says so (the root file
# system is read-only: the image's default error log cannot be opened).
# Discovery (Docker Swarm, where the deploy tasks cannot write the routing): with
# NGINX_DISCOVER="backend:3000 web:3000" (SERVICE:PORT words), this script writes the
# routing itself from each service's tasks as Docker's DNS lists them (tasks.SERVICE), and
# a watcher re-resolves them every 0.5 s and reloads the router gracefully on a change;
# the watcher is watched like the masters.
set -eu
ROUTING=/etc/nginx/upstreams/pools.conf  # a tmpfs in discovery mode

# A service's task addresses, sorted, on one line; "-" when the name has none (getent's
# exit 2: Docker's DNS lists no healthy task); nothing when the lookup failed or timed out.
# A name without tasks may be forwarded by Docker's DNS and hang: 2 s at most (the
# shell's "Terminated" for a getent that busybox's timeout killed goes to /dev/null too).
tasks_of() {
    found=$( { timeout 2 getent ahostsv4 "tasks.$1"; } 2>/dev/null ) && status=0 || status=$?
    case "$status" in
        0)
            # shellcheck disable=SC2005,SC2046 # echo joins the words with single spaces
            echo $(printf '%s\n' "$found" | awk '$1 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ { print $1 }' \
                | sort -u -t . -k1,1n -k2,2n -k3,3n -k4,4n) ;;
        2) echo "-" ;;
        *) echo "" ;;
    esac
}

# Resolves every service into addrs_1, addrs_2, ...; $changes gets a log line per change.
# A failed lookup keeps the previous list (except at the first: $1 = first); a service
# without tasks gets none (a down placeholder: 502), never an old address Docker may
# have given to another task since.
discover() {
    changes=""
    i=0
    for entry in $NGINX_DISCOVER; do
        i=$((i + 1))
        found=$(tasks_of "${entry%%:*}")
        previous=""
        eval "previous=\${addrs_$i-}"
        if [ -z "$1" ] && { [ -z "$found" ] || [ "$found" = "$previous" ]; }; then
            continue
        fi
        [ "$found" = "-" ] && found=""
        [ -z "$1" ] && [ "$found" = "$previous" ] && continue
        eval "addrs_$i=\$found"
        changes="${changes}router: ${entry%%:*} ${found:-(no tasks: 502)}
"
    done
}

# The routing file in deploy/stack/routing.py's format (keep the two in step), written
# atomically: nginx never reads half a file.
write_routing() {
    {
        echo "# Written by start.sh (NGINX_DISCOVER): each service's tasks, from Docker's DNS."
        i=0
        for entry in $NGINX_DISCOVER; do
            i=$((i + 1))
            eval "found=\${addrs_$i-}"
            echo "upstream ${entry%%:*} {"
            [ -n "$found" ] || echo "    server 127.0.0.1:9 down;"  # an upstream needs a server: 502 at once
            for address in $found; do
                echo "    server $address:${entry#*:} max_fails=1 fail_timeout=2s;"
            done
            printf '    keepalive 32;\n    keepalive_timeout 4s;\n}\n'
        done
    } >"$ROUTING.tmp"
    mv -f "$ROUTING.tmp" "$ROUTING"
}

# The watcher: a change is written, checked and applied with a graceful reload (old
# workers finish their requests). If that fails, it ends, and so does the container.
watch_tasks() {
    while [ ! -s /tmp/router.pid ]; do sleep 0.1; done  # router.conf's pid file: what -s reload signals
    while :; do
        sleep 0.5
        discover ""
        [ -n "$changes" ] || continue
        write_routing
        if ! nginx -t -q -e stderr -c /etc/nginx/router.conf || ! nginx -e stderr -c /etc/nginx/router.conf -s reload; then
            echo "router: the new routing could not be applied (see above)" >&2
            exit 1
        fi
        printf '%s' "$changes"
    done
}

# The public HTTPS port the HTTP server redirects to (":8443"; nothing for 443).
case "${NGINX_HTTPS_PORT:-443}" in
    443) NGINX_HTTPS_PORT_SUFFIX="" ;;
    *[!0-9]*) echo "NGINX_HTTPS_PORT must be a port number, not ${NGINX_HTTPS_PORT}" >&2; exit 1 ;;
    *) NGINX_HTTPS_PORT_SUFFIX=":${NGINX_HTTPS_PORT}" ;;
esac
export NGINX_HTTPS_PORT_SUFFIX
# The rate limits reach nginx's config as they are: a rate (50r/s, 600r/m) and a whole
# number, nothing else (no second word, no ";", no line break; deploy/validators.py has
# the same rule for the deploy tasks).
limit_ok() {  # $1: the value, $2: rate or burst
    n=$1
    if [ "$2" = rate ]; then
        n=${1%r/[sm]}
        case "$n" in "$1"|0*) return 1 ;; esac
    fi
    case "$n" in ''|*[!0-9]*) return 1 ;; esac
    [ ${#n} -le 9 ]
}
if ! { limit_ok "${NGINX_API_RATE:-}" rate && limit_ok "${NGINX_WEB_RATE:-}" rate \
        && limit_ok "${NGINX_API_BURST:-}" burst && limit_ok "${NGINX_WEB_BURST:-}" burst; }; then
    echo "NGINX_API_RATE and NGINX_WEB_RATE must be rates (50r/s, 600r/m), NGINX_API_BURST and NGINX_WEB_BURST whole numbers" >&2
    exit 1
fi
envsubst '$NGINX_API_RATE $NGINX_WEB_RATE $NGINX_HTTPS_PORT_SUFFIX' \
    < /etc/nginx/templates/nginx.conf.template > /tmp/nginx.conf
envsubst '$NGINX_API_BURST $NGINX_WEB_BURST' < /etc/nginx/templates/site.conf.template > /tmp/site.conf
# Discovery: the first routing, before nginx checks it (a service without tasks yet is down).
if [ -n "${NGINX_DISCOVER:-}" ]; then
    set -f  # the list's words are never file patterns
    for tool in getent timeout; do
        command -v "$tool" >/dev/null || { echo "NGINX_DISCOVER needs $tool in the image" >&2; exit 1; }
    done
    for entry in $NGINX_DISCOVER; do
        case "$entry" in
            *[!A-Za-z0-9_.:-]* | :* | *: | *:*:* | *:*[!0-9]*) ;;
            *:*) continue ;;
        esac
        echo "NGINX_DISCOVER must list SERVICE:PORT words (backend:3000 web:3000), not $entry" >&2
        exit 1
    done
    discover first
    write_routing
    printf '%s' "$changes"
fi
nginx -t -q -e stderr -c /etc/nginx/router.conf  # a bad config stops the container here, with nginx's message
nginx -t -q -e stderr -c /tmp/nginx.conf
front=""
router=""
watcher=""
stop() {
    [ -z "$watcher" ] || kill -TERM "$watcher" 2>/dev/null || true  # first: no reload while the masters quit
    # shellcheck disable=SC2086 # an empty pid, before the masters started, is no word
    kill -QUIT $front $router 2>/dev/null || true  # graceful: requests in flight finish
    i=0  # until both masters are gone, at most 30 s
    while [ "$i" -lt 300 ] && { kill -0 "$front" 2>/dev/null || kill -0 "$router" 2>/dev/null; }; do
        sleep 0.1
        i=$((i + 1))
    done
    exit 0
}
trap stop TERM INT QUIT  # the nginx images stop with SIGQUIT (graceful); set before the masters start
nginx -e stderr -c /etc/nginx/router.conf -g 'daemon off;' &
router=$!
nginx -e stderr -c /tmp/nginx.conf -g 'daemon off;' &
front=$!
if [ -n "${NGINX_DISCOVER:-}" ]; then
    watch_tasks &
    watcher=$!
fi
while kill -0 "$front" 2>/dev/null && kill -0 "$router" 2>/dev/null && { [ -z "$watcher" ] || kill -0 "$watcher" 2>/dev/null; }; do
    sleep 1 &
    wait $! || true
done
if [ -n "$watcher" ] && ! kill -0 "$watcher" 2>/dev/null; then
    echo "the task watcher ended: stopping the container so that it restarts" >&2
else
    echo "an nginx master ended: stopping the container so that it restarts" >&2
fi
# shellcheck disable=SC2086 # no watcher: no word
kill -TERM "$front" "$router" $watcher 2>/dev/null || true
exit 1
