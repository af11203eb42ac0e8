#!/bin/sh
# The proxy container's main process: renders the front's config (rate limits from the
# environment), starts the router nginx and the front nginx (README "How routing
# works"), and watches both masters. If either ends, so does the container, and its
# restart policy brings the pair back (a router that died alone would leave the front
# answering 502 in a container that still looks up). SIGTERM (docker stop) ends both
# gracefully: they finish the requests in flight (so do SIGQUIT, the nginx images' stop
# signal, and SIGINT).
# Both masters run in the foreground ("daemon off"), children of this script: they keep
# its stdout and stderr (the container's log), so /dev/stdout and /dev/stderr still name
# the log after a reload (a daemonized master would reopen them as /dev/null). `-e
# stderr`: nginx logs there from its first line, before its config says so (the root file
# system is read-only: the image's default error log cannot be opened).
set -eu
# The public HTTPS port the HTTP server redirects to (":8443"; nothing for 443).
case "${NGINX_HTTPS_PORT:-443}" in
    443) NGINX_HTTPS_PORT_SUFFIX="" ;;
    *[!0-9]*) echo "NGINX_HTTPS_PORT must be a port number, not ${NGINX_HTTPS_PORT}" >&2; exit 1 ;;
    *) NGINX_HTTPS_PORT_SUFFIX=":${NGINX_HTTPS_PORT}" ;;
esac
export NGINX_HTTPS_PORT_SUFFIX
envsubst '$NGINX_API_RATE $NGINX_WEB_RATE $NGINX_HTTPS_PORT_SUFFIX' \
    < /etc/nginx/templates/nginx.conf.template > /tmp/nginx.conf
envsubst '$NGINX_API_BURST $NGINX_WEB_BURST' < /etc/nginx/templates/site.conf.template > /tmp/site.conf
nginx -t -q -e stderr -c /etc/nginx/router.conf  # a bad config stops the container here, with nginx's message
nginx -t -q -e stderr -c /tmp/nginx.conf
front=""
router=""
stop() {
    # shellcheck disable=SC2086 (an empty pid, before the masters started, is no word)
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
while kill -0 "$front" 2>/dev/null && kill -0 "$router" 2>/dev/null; do
    sleep 1 &
    wait $! || true
done
echo "an nginx master ended: stopping the container so that it restarts" >&2
kill -TERM "$front" "$router" 2>/dev/null || true
exit 1
