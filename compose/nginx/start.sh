#!/bin/sh
# The proxy container's main process: renders the front's config (rate limits from the
# environment), starts the router nginx and the front nginx (README "How routing
# works"), and watches both masters. If either ends, so does the container, and its
# restart policy brings the pair back (a router that died alone would leave the front
# answering 502 in a container that still looks up). SIGTERM (docker stop) ends both
# gracefully: they finish the requests in flight (so do SIGQUIT, the nginx images' stop
# signal, and SIGINT).
set -eu
envsubst '$NGINX_API_RATE $NGINX_API_BURST $NGINX_WEB_RATE $NGINX_WEB_BURST' \
    < /etc/nginx/templates/nginx.conf.template > /tmp/nginx.conf
nginx -c /etc/nginx/router.conf
nginx -c /tmp/nginx.conf
stop() {
    front=$(cat /tmp/nginx.pid 2>/dev/null || true)
    router=$(cat /tmp/router.pid 2>/dev/null || true)
    nginx -c /tmp/nginx.conf -s quit 2>/dev/null || true
    nginx -c /etc/nginx/router.conf -s quit 2>/dev/null || true
    i=0  # until both masters are gone (they finish their requests first), at most 30 s
    while [ "$i" -lt 300 ] && { kill -0 "$front" 2>/dev/null || kill -0 "$router" 2>/dev/null; }; do
        sleep 0.1
        i=$((i + 1))
    done
    exit 0
}
trap stop TERM INT QUIT  # the nginx images stop with SIGQUIT (graceful)
while kill -0 "$(cat /tmp/nginx.pid)" 2>/dev/null && kill -0 "$(cat /tmp/router.pid)" 2>/dev/null; do
    sleep 1 &
    wait $! || true
done
echo "an nginx master ended: stopping the container so that it restarts" >&2
nginx -c /tmp/nginx.conf -s stop 2>/dev/null || true
nginx -c /etc/nginx/router.conf -s stop 2>/dev/null || true
exit 1
